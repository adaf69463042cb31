"""One validator per kind of value a reader passes in: every public entry point that takes such a
value calls the validator for its kind first, before any long work (training, playing, harvesting).

Kinds: counts and seeds (:func:`check_int`, :func:`check_seed`, :func:`check_count`), episode counts
(:func:`check_episode_counts`), real numbers (:func:`check_number`), task names
(:func:`check_task_names`), layers (:func:`check_layer_index`), latent indices
(:func:`check_latent_indices`) and model sources (:func:`check_model_source`). SAE configs are
dataclasses whose ``__post_init__`` runs these same validators on every field.

Each raises with a message naming the value and what is allowed. This module imports nothing heavy
(no numpy, torch or transformers: numpy's scalars are ``numbers.Integral`` / ``numbers.Real``), so the
front door (tdsae.presets.resolve_settings) can use it in well under a second.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Iterable

TASK_NAMES = ("twostep", "gridworld", "graph")
ARCHITECTURES = ("standard", "topk")  # SAE architectures: ReLU + L1 (the paper's) and TopK
ORGANISM = "organism"  # the model setting that means "the organism tdsae trains", not a folder or hub id
# Heads that make a model a causal (left-to-right) language model, as transformers names its classes.
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel", "GenerationDecoder")
# Encoder families whose causal-LM classes attend bidirectionally unless the config sets is_decoder
# (transformers warns "add is_decoder=True" for each); a config of theirs without it is not a causal LM.
ENCODER_MODEL_TYPES = frozenset({
    "bert", "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "electra", "ernie", "data2vec-text",
    "rembert", "roc_bert", "xmod", "megatron-bert", "big_bird", "bert-generation", "mega", "distilbert",
    "albert", "deberta", "deberta-v2", "mpnet", "modernbert",
})
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (1, 2, 3)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # "owner/name" or a legacy bare "name"


class ModelNotFoundError(OSError):
    """A model could not be found: a missing local directory, or a hub id not reachable."""


def check_int(value: Any, name: str, least: int = 0) -> int:
    """``value`` as an int if it is an integer (numpy integers too, never a bool or a float) >= least."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        allowed = "a non-negative int" if least == 0 else "a positive int" if least == 1 else f"an int >= {least}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed: an int >= 0 (numpy's SeedSequence and torch's generators take no negative seeds)."""
    return check_int(value, name, 0)


def check_count(value: Any, name: str) -> int:
    """A count of things to make (experiments, episodes, steps, rows): an int >= 1."""
    return check_int(value, name, 1)


def check_episode_counts(n_experiments: Any, n_episodes: Any, n_random_episodes: Any) -> tuple[int, int, int]:
    """(n_experiments, n_episodes, n_random_episodes) as ints: at least one experiment and episode, and
    fewer random episodes than episodes (otherwise every episode would be played at random)."""
    n_experiments = check_count(n_experiments, "n_experiments")
    n_episodes = check_count(n_episodes, "n_episodes")
    n_random = check_int(n_random_episodes, "n_random_episodes", 0)
    if n_random >= n_episodes:
        raise ValueError(f"n_random_episodes must be fewer than n_episodes={n_episodes} (otherwise every "
                         f"episode is played at random), got {n_random_episodes!r}")
    return n_experiments, n_episodes, n_random


def check_number(value: Any, name: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a float if it is a finite real number (not a bool or a string) within the bounds."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    allowed = "a finite number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    number = float(value)
    if low is not None and (number < low or (low_open and number == low)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if high is not None and (number > high or (high_open and number == high)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return number


def check_task_names(tasks: Any) -> tuple[str, ...]:
    """``tasks`` (one name or several) as a tuple after checking every name is a known task."""
    names = (tasks,) if isinstance(tasks, str) else tuple(tasks) if isinstance(tasks, Iterable) else (tasks,)
    for task in names:
        if task not in TASK_NAMES:
            raise ValueError(f"unknown task {task!r}; choose one of: {', '.join(TASK_NAMES)}")
    return names


def check_layer_index(layer: Any, n_layers: int, name: str = "layer") -> int:
    """A residual layer as an int in 0..n_layers (0 = embeddings, l = output of block l - 1).

    Negative layers are refused rather than counted from the end: -1 would silently read the last block.
    """
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 0 <= layer <= n_layers:
        raise ValueError(f"{name} {layer!r} is out of range: this model has residual layers 0..{n_layers} "
                         "(0 = embeddings, l = output of block l-1)")
    return int(layer)


def check_latent_indices(latents: Any, d_sae: int, name: str = "latents") -> list[int]:
    """Latent indices as a list of ints, each an integer in 0..d_sae-1 (3.7 is refused, never rounded)."""
    if isinstance(latents, (str, bytes)) or not isinstance(latents, Iterable):
        raise ValueError(f"{name} must be a list of latent indices in 0..{d_sae - 1}, got {latents!r}")
    values = list(latents)
    bad = [i for i in values if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < d_sae]
    if bad:
        raise ValueError(f"{name} {bad} are not latent indices: an SAE with d_sae={d_sae} has integer "
                         f"latents 0..{d_sae - 1}")
    return [int(i) for i in values]


def check_sae_architecture(architecture: Any, k: Any, d_sae: int | None = None) -> None:
    """An SAE architecture (ARCHITECTURES) and its k: an int in 1..d_sae for "topk" (d_sae None: not yet known),
    None for "standard"."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown SAE architecture {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")
    if architecture == "topk":
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 or (d_sae is not None and k > d_sae):
            fit = "" if d_sae is None else f" d_sae={d_sae}"
            raise ValueError(f"topk SAE: k={k!r} does not fit{fit}; need an int with 1 <= k <= d_sae")
    elif k is not None:
        raise ValueError(f"k is only used by the topk architecture; got k={k!r} for {architecture!r}")


def check_bf16_choice(value: Any, name: str = "bf16") -> None:
    """A bf16 switch: True, False, or None (decided by the hardware, tdsae.runtime.matmul_precision)."""
    if value not in (None, True, False):
        raise ValueError(f"{name} must be True, False or None (decided by the hardware), got {value!r}")


def looks_local(name_or_path: str) -> bool:
    """True when a string can only be a filesystem path, never a hub id ("owner/name" or "name")."""
    return (os.path.isabs(name_or_path) or name_or_path.startswith((".", "~")) or "\\" in name_or_path
            or name_or_path.count("/") > 1 or name_or_path.endswith("/"))


def read_model_config(folder: Path) -> dict:
    """The parsed config.json of a model folder, or ModelNotFoundError naming the folder and the fault."""
    path = Path(folder) / "config.json"
    if not path.exists():
        raise ModelNotFoundError(f"model directory {str(folder)!r} exists but has no config.json; "
                                 "is it a folder written by save_pretrained?")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelNotFoundError(f"the config.json of model directory {str(folder)!r} cannot be read: "
                                 f"{error}") from None
    if not isinstance(config, dict):
        raise ModelNotFoundError(f"the config.json of model directory {str(folder)!r} is not a JSON object")
    return config


def check_causal_lm_config(config: dict, where: str) -> None:
    """Raise ValueError unless a model config describes a causal (left-to-right) language model."""
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    what = f"{', '.join(map(str, architectures)) or 'a model'} (model_type {model_type!r})"
    expected = ("tdsae reads causal language models: a config whose architectures name a ...ForCausalLM or "
                "...LMHeadModel class, such as LlamaForCausalLM or GPT2LMHeadModel")
    if config.get("is_encoder_decoder"):
        raise ValueError(f"{where} holds an encoder-decoder model, {what}, not a causal language model; {expected}")
    if model_type in ENCODER_MODEL_TYPES and not config.get("is_decoder"):
        raise ValueError(f"{where} holds an encoder, {what}, without is_decoder=true: its attention is "
                         f"bidirectional, so it is not a causal language model; {expected}")
    if architectures and not any(str(a).endswith(CAUSAL_LM_SUFFIXES) for a in architectures):
        raise ValueError(f"{where} holds {what}, not a causal language model; {expected}")


def check_gguf_file(path: Path) -> None:
    """Raise ModelNotFoundError unless ``path`` starts like a GGUF file (magic bytes, known version)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise ModelNotFoundError(f"GGUF file {str(path)!r} cannot be read: {error}") from None
    version = int.from_bytes(head[4:8], "little") if len(head) == 8 else None
    if head[:4] != GGUF_MAGIC or version not in GGUF_VERSIONS:
        raise ModelNotFoundError(f"{str(path)!r} cannot be read as a GGUF file: it does not start with the GGUF "
                                 f"magic bytes and a version in {GGUF_VERSIONS} (truncated or not GGUF?)")


def check_model_source(name_or_path: Any) -> str:
    """"local" for a model folder, "gguf" for a GGUF file, "hub" for something shaped like a hub id;
    refuse anything else.

    Local checks only, so it answers in milliseconds: a folder must hold a config.json describing a
    causal LM, a GGUF file must start with the GGUF magic bytes and a known version; a path that does
    not exist, any other file and a string that is neither a path nor a hub id are refused. Whether a
    hub id is reachable is tdsae.models' question; a GGUF file is dequantised into a folder once, by
    tdsae.pipeline.model_folder.
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or str(name_or_path).strip() == "":
        raise ValueError(f"model must be a hub id or a local directory, got {name_or_path!r}")
    text = str(name_or_path)
    path = Path(os.path.expanduser(text))
    if path.is_dir():
        check_causal_lm_config(read_model_config(path), f"model directory {str(path)!r}")
        return "local"
    if path.exists():
        if path.suffix.lower() == ".gguf" or _starts_with(path, GGUF_MAGIC):
            check_gguf_file(path)
            return "gguf"
        raise ModelNotFoundError(f"model path {str(path)!r} is a file; expected a directory from save_pretrained "
                                 "or a GGUF file")
    if looks_local(text) or not HUB_ID.match(text):
        raise ModelNotFoundError(f"model directory {str(path)!r} does not exist, and it is not a hub id either, so "
                                 "the hub was not tried: train or copy the model there first")
    if "/" not in text and difflib.SequenceMatcher(None, text.lower(), ORGANISM).ratio() >= 0.75:
        raise ValueError(f"unknown model {text!r}: did you mean {ORGANISM!r} (the organism tdsae trains)? "
                         "Otherwise pass a hub id such as 'owner/name' or a local directory")
    return "hub"


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False
