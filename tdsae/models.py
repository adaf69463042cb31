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

import os
from pathlib import Path
from typing import Any

from tdsae.runtime import forced_precision, matmul_precision, pick_device
from tdsae.validation import (ModelNotFoundError, check_causal_lm_config, check_layer_index, check_model_source,
                              read_model_config)


def pick_dtype(device: str):
    """The weights' dtype on a device: on CUDA the fast matmul dtype (bf16 where the GPU has it natively,
    tdsae.runtime.matmul_precision, which TDSAE_PRECISION overrides); fp32 on the CPU, where the models
    are small enough for exact activations (the harvest is checked against a plain fp32 forward)."""
    import torch

    return matmul_precision("cuda").torch_dtype if device == "cuda" else torch.float32


HUB_PROBE_TIMEOUT_S = 3.0  # how long a hub id not in the cache waits to learn whether the hub answers at all


def check_source(name_or_path) -> str:
    """Return "local" or "hub" for a model source, or raise naming it and why, in a few seconds at most.

    Local folders: tdsae.validation.check_model_source (exists, holds a causal LM's config). Hub ids:
    a cached config must describe a causal LM; an id not in the cache is refused at once under
    HF_HUB_OFFLINE, and otherwise after one request to the hub that fails (at most
    HUB_PROBE_TIMEOUT_S), instead of from_pretrained's retries (about 30 s) before the same answer.
    """
    if check_model_source(name_or_path) == "local":
        return "local"
    from huggingface_hub import constants, try_to_load_from_cache

    name = str(name_or_path)
    cached = try_to_load_from_cache(name, "config.json")
    if isinstance(cached, str):
        check_causal_lm_config(read_model_config(Path(cached).parent), f"hub id {name!r}")
        return "hub"
    if constants.HF_HUB_OFFLINE:
        raise ModelNotFoundError(f"hub id {name!r} is not in the local Hugging Face cache and "
                                 "HF_HUB_OFFLINE=1 forbids downloading it; download it once online, "
                                 "or pass a local directory")
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as error:  # whatever the HTTP client raises: no route, no DNS, a timeout, a refused proxy
        raise ModelNotFoundError(f"hub id {name!r} is not in the local Hugging Face cache and the hub "
                                 f"({constants.ENDPOINT}) cannot be reached ({type(error).__name__}: {error}); "
                                 "pass a local directory, or set HF_HUB_OFFLINE=1 to fail at once") from None
    return "hub"


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
        return TransformersModel(path, task="text-generation", dispatch=True, **options)
    except OSError as error:
        where = f"model directory {path!r}" if source == "local" else f"hub id {name!r}"
        raise ModelNotFoundError(f"could not load {where}: {error}") from error


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
    """The number of decoder blocks of a model folder (or of a hub id in the local cache) read from its
    config.json without loading any weights; None when the config is not on this machine."""
    if check_model_source(name_or_path) == "local":
        folder = Path(os.path.expanduser(str(name_or_path)))
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


def left_padding(tokenizer):
    """The tokenizer set up for batches of prompts read at their last token: padded on the left, with the
    end-of-sequence token as pad where it has none. Returns the same tokenizer."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def masked_next_token_loss(logits, ids, pad_id: int | None, weight=None):
    """Mean cross-entropy of predicting ids[:, 1:], padding targets left out.

    Args: logits [batch, seq - 1, vocab]: the predictions made at ids[:, :-1]; ids [batch, seq]
    right-padded with pad_id (None: nothing is padding); weight [batch, seq - 1]: each target's weight
    in the mean (e.g. 0 outside the tokens scored, or more on actions). Returns: scalar tensor.
    """
    import torch

    targets = ids[:, 1:]
    per_word = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction="none")
    keep = torch.ones_like(per_word) if pad_id is None else (targets.flatten() != pad_id).float()
    if weight is not None:
        keep = keep * weight.flatten().float()
    return (per_word * keep).sum() / keep.sum()
