"""A preset's SAEs: one per layer of a harvested store, trained once and kept in the artifact cache.

    saes = layer_saes(settings, "twostep")               # {layer: LayerSAE}, layers 1..n_layers
    saes[2].sae.encode(acts); saes[2].metrics["l0"]; saes[2].folder   # a SAELens folder

Each SAE is trained on at most ``settings.sae_vectors`` rows of its layer, drawn with the seed;
its metrics are measured on the store's other rows when there are enough of them (held out),
else on every row. The cache key holds the store it was trained on and every training setting.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tdsae.artifacts import ArtifactStore
from tdsae.models import source_layers
from tdsae.pipeline.episodes import check_request, harvested_store, model_source, untrained_source
from tdsae.presets import analysis_layers
from tdsae.runtime import matmul_precision, pick_device
from tdsae.sae.config import SAETrainingConfig
from tdsae.sae.metrics import reconstruction_metrics
from tdsae.sae.model import SAEConfig
from tdsae.sae.saelens_format import load_sae, save_sae
from tdsae.sae.sweep import L1_GRID, mean_explained_variance
from tdsae.sae.training import train_sae
from tdsae.validation import (ORGANISM, check_bf16_choice, check_count, check_int, check_layer_index, check_number,
                              check_sae_architecture, check_seed)

METRICS_FILE = "metrics.json"
LOG_FILE = "log.csv"
MIN_HELD_OUT = 1000  # fewer held-out rows than this: metrics are measured on every row


@dataclass
class LayerSAE:
    """An SAE of one layer and how it was trained."""

    layer: int  # residual layer (0 = embeddings)
    sae: object  # tdsae.sae.SAE, folded: reads raw activations
    metrics: dict  # mse, explained_variance, l0, frac_alive, seconds, rows_trained, metrics_on
    log: pd.DataFrame  # the training log (loss, mse_loss, l1_loss or auxk_loss, l0 by step)
    folder: Path  # the SAELens-format folder


def training_rows(n_rows: int, limit: int, seed: int) -> np.ndarray:
    """Sorted rows an SAE trains on, drawn without replacement with the seed: at most ``limit``, and never so many
    that fewer than a fifth of the rows (at least MIN_HELD_OUT) are left to score it on. Only a store too small to
    spare them (under 2 * MIN_HELD_OUT rows) is trained on whole, and then scored on the rows it saw."""
    n_rows, limit, seed = check_int(n_rows, "n_rows", 0), check_count(limit, "limit"), check_seed(seed)
    # the paper's 18,000 vectors exceed a 100-experiment store: without this cap an SAE would train on every row and
    # its "held-out" metrics, and the sparsity penalty chosen by them, would be read on its own training data
    spare = n_rows - max(MIN_HELD_OUT, n_rows // 5) if n_rows >= 2 * MIN_HELD_OUT else n_rows
    limit = min(limit, spare)
    if n_rows <= limit:
        return np.arange(n_rows)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(11,)))
    return np.sort(rng.choice(n_rows, size=limit, replace=False))


def layer_saes(settings, task_name: str, model: str | None = None, played_by: str | None = None, layers=None,
               architecture: str = "standard", l1: float | None = None, k: int | None = None,
               bf16: bool | None = None, sae_seed: int | None = None, store=None) -> dict:
    """The SAEs of every analysis layer of the store harvested_store returns for these arguments (default: all
    of 1..n_layers, or settings.sae_max_layers of them evenly spaced in a deeper model: presets.analysis_layers).

    Args: settings: a resolved Preset (sae_* knobs: expansion, l1, lr, batch, epochs, vectors);
    architecture: "standard" (ReLU + L1, the paper's) or "topk" (with k); l1: overrides
    settings.sae_l1; bf16: bf16 encoder matmul (fp32 master weights); None: where the device runs bf16
    natively (tdsae.runtime.matmul_precision; resolved before the cache key, so it is part of it);
    sae_seed: the seed of the SAEs' initialisation and batch order (default settings.seed); the rows they
    train on are drawn with settings.seed whatever it is, so two SAE seeds differ in their training alone.
    Returns: {layer: LayerSAE}.
    """
    check_request(settings, task_name, model, played_by)
    check_sae_request(architecture, l1, k, bf16)
    sae_seed = settings.seed if sae_seed is None else check_seed(sae_seed)
    if layers is not None:
        n_layers = (settings.organism_layers if model is None and settings.model == ORGANISM
                    else source_layers(model if model is not None else settings.model))
        layers = [check_layer_index(layer, n_layers) if n_layers is not None else check_int(layer, "layer", 0)
                  for layer in layers]
    acts_store = harvested_store(settings, task_name, model, played_by, store=store)
    if layers is None:  # the preset's analysis layers (all of a small model's; sae_max_layers of a deep one's)
        layers = analysis_layers(max(acts_store.layers), settings.sae_max_layers)
    missing = [l for l in layers if l not in acts_store.layers]
    if missing:
        raise ValueError(f"layers {missing} are not in the store; it holds layers {list(acts_store.layers)}")
    artifacts = ArtifactStore() if store is None else store
    return {layer: _layer_sae(settings, acts_store, layer, architecture, settings.sae_l1 if l1 is None else l1, k,
                              bf16, sae_seed, artifacts) for layer in layers}


def check_sae_request(architecture: str, l1, k, bf16) -> None:
    """The SAE choices of layer_saes, checked before anything is harvested (d_sae bounds k later)."""
    check_sae_architecture(architecture, k)
    if l1 is not None:
        check_number(l1, "l1", low=0)
    check_bf16_choice(bf16)


def check_l1_grid(grid) -> list[float]:
    """An L1 grid as a non-empty list of finite coefficients >= 0."""
    values = [check_number(l1, "L1 coefficient", low=0) for l1 in grid]
    if not values:
        raise ValueError("the L1 grid is empty; give at least one coefficient")
    return values


def _layer_sae(settings, acts_store, layer: int, architecture: str, l1: float, k, bf16: bool | None, sae_seed: int,
               artifacts) -> LayerSAE:
    d_in = acts_store.d_model
    hook_name, hf_hook_name = acts_store.hook_names(layer)
    config = SAEConfig(d_in=d_in, d_sae=settings.sae_expansion * d_in, architecture=architecture, k=k,
                       hook_name=hook_name, hf_hook_name=hf_hook_name, model_name=acts_store.meta.get("model") or None)
    # center: residual streams carry a large constant offset (the graph walks' is 20-30x their spread), which
    # b_dec should carry from the start instead of the latents paying L1 for it
    device = pick_device(settings.device)
    training = SAETrainingConfig(l1_coefficient=float(l1), lr=settings.sae_lr, batch_size=settings.sae_batch,
                                 epochs=settings.sae_epochs, seed=sae_seed, center=True,
                                 bf16=matmul_precision(device).bf16 if bf16 is None else bool(bf16))
    rows = training_rows(acts_store.n_rows, settings.sae_vectors, settings.seed)
    params = {"activations": acts_store.directory.parent.name, "layer": int(layer), "rows": len(rows),
              "sae": dataclasses.asdict(config), "training": dataclasses.asdict(training), "device": device}

    def build(tmp: Path) -> None:
        acts = acts_store.acts(layer)
        trained = train_sae(np.asarray(acts[rows]), config, training, device=device)
        held_out = np.setdiff1d(np.arange(acts_store.n_rows), rows)
        on = held_out if len(held_out) >= MIN_HELD_OUT else np.arange(acts_store.n_rows)
        metrics = reconstruction_metrics(trained.sae, np.asarray(acts[on]))
        metrics.update(seconds=trained.seconds, rows_trained=len(rows),
                       metrics_on="held-out rows" if len(on) < acts_store.n_rows else "all rows")
        save_sae(trained.sae, tmp / "sae")
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
        trained.log.to_csv(tmp / LOG_FILE, index=False)

    folder = artifacts.load_or_build("sae", params, build)
    return LayerSAE(int(layer), load_sae(folder / "sae", device="cpu", expected_d_in=d_in),
                    json.loads((folder / METRICS_FILE).read_text()), pd.read_csv(folder / LOG_FILE), folder / "sae")


def l1_sweep(settings, task_name: str, model: str | None = None, played_by: str | None = None,
             grid=L1_GRID, store=None) -> pd.DataFrame:
    """Metrics of every layer's standard SAE at each L1 coefficient of the grid.

    Returns: rows of l1, layer, mse, explained_variance, l0, frac_alive, seconds, rows_trained.
    """
    check_request(settings, task_name, model, played_by)
    grid = check_l1_grid(grid)
    return pd.concat([_sweep_rows(settings, task_name, model, played_by, l1, store) for l1 in grid], ignore_index=True)


def _sweep_rows(settings, task_name: str, model, played_by, l1: float, store) -> pd.DataFrame:
    """l1_sweep's rows for one coefficient."""
    return pd.DataFrame([{"l1": float(l1), "layer": layer, **{k: v for k, v in entry.metrics.items() if k != "metrics_on"}}
                         for layer, entry in layer_saes(settings, task_name, model, played_by, l1=l1, store=store).items()])


def chosen_l1(settings, task_name: str, grid=L1_GRID, store=None) -> float:
    """choose_l1 on the preset model's sweep of this task, training only the SAEs the choice needs.

    The coefficients are tried from the largest down and the first that keeps the variance is the
    choice: the same coefficient as choose_l1 on the whole sweep, whatever shape the sweep has, at a
    fraction of the cost when the answer lies near the sparse end of the grid.
    """
    check_request(settings, task_name)
    grid = check_l1_grid(grid)
    for l1 in sorted(grid, reverse=True):
        mean = mean_explained_variance(_sweep_rows(settings, task_name, None, None, l1, store))
        if mean.iloc[0] >= settings.sae_min_explained_variance:
            return float(l1)
    return float(min(grid))


def analysis_saes(settings, task_name: str, model: str | None = None, played_by: str | None = None,
                  sae_seed: int | None = None, store=None) -> tuple[float, dict]:
    """The SAEs chapters 7 to 9 analyse: standard SAEs at the L1 coefficient choose_l1 picks on the
    preset model's own sweep for this task (found by chosen_l1), the same coefficient for any other
    reader, e.g. the untrained control, so that both are decomposed alike. For a population the sweep is
    organism 0's (the one chapter 6 runs), and every organism's SAEs use its choice: one SAE recipe for
    the whole population, as one recipe trains every organism.

    sae_seed: as layer_saes takes it (a second SAE seed shows how much of a result is the SAE's own draw).
    Returns: (l1, {layer: LayerSAE}).
    """
    check_request(settings, task_name, model, played_by)
    if sae_seed is not None:
        check_seed(sae_seed)
    l1 = chosen_l1(dataclasses.replace(settings, organism=0), task_name, store=store)
    return l1, layer_saes(settings, task_name, model, played_by, l1=l1, sae_seed=sae_seed, store=store)


def trained_and_untrained(settings, task_name: str, store=None) -> tuple[float, dict, dict]:
    """The preset model's activation store and analysis SAEs beside its untrained control's, reading the
    same episodes (the trained model's own play): what chapter 7 compares, for one organism of a population.

    Returns: (l1, {"trained": store, "untrained": store}, {"trained": {layer: LayerSAE}, "untrained": ...}).
    """
    check_request(settings, task_name)
    trained = model_source(settings, task_name)
    untrained = untrained_source(settings, store, task_name)
    stores = {"trained": harvested_store(settings, task_name, store=store),
              "untrained": harvested_store(settings, task_name, model=untrained, played_by=trained, store=store)}
    l1, saes_trained = analysis_saes(settings, task_name, store=store)
    _, saes_untrained = analysis_saes(settings, task_name, model=untrained, played_by=trained, store=store)
    return l1, stores, {"trained": saes_trained, "untrained": saes_untrained}
