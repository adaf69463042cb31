"""Layer profiles of the best units, comparisons between them, and the learning-rate sweep.

Built on tdsae.latents.search: every best unit is chosen on the selection half of the experiments and
reported on the other half, and so is every best layer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tdsae.latents.search import best_pair, best_unit
from tdsae.latents.targets import TARGETS, check_target, covariates_of, reference_targets
from tdsae.stats import bootstrap_interval, correlations, experiment_rows, residualize
from tdsae.validation import check_number

UNIT_KINDS = ("SAE latent", "SAE latent pair", "residual dimension")  # what profile compares, per layer


def unit_profile(units_by_layer: dict, targets: pd.DataFrame, *, target: str, selection: np.ndarray,
                 partial: bool = False, n_boot: int = 200, seed: int = 0, pair: bool = False,
                 extra_controls=()) -> pd.DataFrame:
    """Best unit (or, with pair, best latent pair) per layer for one target.

    Args: units_by_layer: {layer: [n_entries, k] values of the units at every index entry of the
    target's kind (rows of ``targets``)}; targets: reference_targets rows of that kind.
    extra_controls: columns of targets controlled for besides the reward and step (with partial; covariates_of).
    Returns: one row per layer: layer, unit, partner, r_select, r_report, low, high, n_report.
    """
    check_target(targets, target)
    covariates = covariates_of(targets, extra_controls) if partial else None
    choose = best_pair if pair else best_unit
    rows = []
    for layer, units in units_by_layer.items():
        best = choose(units, targets[target].to_numpy(float), targets.experiment.to_numpy(), selection,
                      covariates, n_boot, seed)
        rows.append({"layer": layer, **{k: v for k, v in best.__dict__.items() if k != "scales"}})
    return pd.DataFrame(rows)


def reference_sweep(task, traj, targets: pd.DataFrame, units: np.ndarray, *, selection: np.ndarray, alphas, gammas,
                    target: str = "td_error", partial: bool = True, seed: int = 0) -> pd.DataFrame:
    """How well the best unit tracks the target of reference Q-learners with other alpha and gamma.

    The unit is chosen afresh for each (alpha, gamma) on the selection half.
    Returns: rows of alpha, gamma, unit, r_report, low, high.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; a reference Q-learner gives: {', '.join(TARGETS)}")
    alphas = [check_number(alpha, "alpha", low=0, high=1, low_open=True) for alpha in alphas]
    gammas = [check_number(gamma, "gamma", low=0, high=1) for gamma in gammas]
    rows = []
    for gamma in gammas:
        for alpha in alphas:
            swept = reference_targets(task, traj, targets, alpha, gamma)
            covariates = covariates_of(swept) if partial else None
            best = best_unit(units, swept[target].to_numpy(float), swept.experiment.to_numpy(), selection,
                             covariates, seed=seed)
            rows.append({"alpha": float(alpha), "gamma": float(gamma), "unit": best.unit, "r_report": best.r_report,
                         "low": best.low, "high": best.high})
    return pd.DataFrame(rows)


def units_at(store, layer: int, rows, sae=None) -> np.ndarray:
    """The units of one layer at the given store rows: raw residual dimensions [n, d_model], or the
    latents of ``sae`` (a tdsae.sae.SAE) [n, d_sae]."""
    acts = store.acts(layer, rows)
    if sae is None:
        return acts
    with torch.no_grad():
        return sae.encode(torch.as_tensor(acts, dtype=sae.W_enc.dtype, device=sae.device)).float().cpu().numpy()


def profile(stores: dict, saes: dict, targets: pd.DataFrame, *, target: str, selection: np.ndarray,
            partial: bool = False, n_boot: int = 200, seed: int = 0, extra_controls=()) -> pd.DataFrame:
    """Best SAE latent, best latent pair and best residual dimension per layer, for every model.

    Args: stores: {model label: ActivationStore} (the same episodes, so the same index);
    saes: {model label: {layer: LayerSAE}}; targets: reference_targets rows of the target's kind.
    Returns: rows of model, units (one of UNIT_KINDS), layer, unit, partner, r_select, r_report,
    low, high, n_report.
    """
    check_target(targets, target)
    frames = []
    rows = targets.row.to_numpy()
    for label, store in stores.items():
        latents = {layer: units_at(store, layer, rows, entry.sae) for layer, entry in sorted(saes.get(label, {}).items())}
        dimensions = {layer: units_at(store, layer, rows) for layer in store.layers}
        for kind, units, pair in (("SAE latent", latents, False), ("SAE latent pair", latents, True),
                                  ("residual dimension", dimensions, False)):
            if units:
                table = unit_profile(units, targets, target=target, selection=selection, partial=partial, n_boot=n_boot,
                                     seed=seed, pair=pair, extra_controls=extra_controls)
                frames.append(table.assign(model=label, units=kind))
    columns = ["model", "units", "layer", "unit", "partner", "r_select", "r_report", "low", "high", "n_report"]
    return pd.concat(frames, ignore_index=True)[columns]


def best_layers(table: pd.DataFrame) -> pd.DataFrame:
    """For each (model, units) of a profile, the layer whose best unit did best on the selection
    half, reported with its report-half numbers. Returns: one row per (model, units)."""
    chosen = table.dropna(subset=["r_select"]).assign(strength=lambda t: t.r_select.abs())
    index = chosen.groupby(["model", "units"]).strength.idxmax()
    return chosen.loc[index].drop(columns="strength").set_index(["model", "units"])


def compare_best(units_a: np.ndarray, units_b: np.ndarray, targets: pd.DataFrame, *, target: str, selection: np.ndarray,
                 partial: bool = False, n_boot: int = 500, seed: int = 0, pairs=(False, False),
                 extra_controls=()) -> dict:
    """Is a's best unit stronger than b's? |r_a| - |r_b| on the report half, with a paired bootstrap
    over report-half experiments (both units are read on the same rows).

    Args: units_a, units_b: [n, k_a], [n, k_b] at the rows of targets; pairs: whether each side is
    read as its best latent pair; extra_controls: as unit_profile takes them.
    Returns: {"difference", "low", "high", "r_a", "r_b"}.
    """
    check_target(targets, target)
    y = targets[target].to_numpy(float)
    keep = np.isfinite(y)
    experiments = targets.experiment.to_numpy()[keep]
    covariates = covariates_of(targets[keep], extra_controls) if partial else None
    picks = [(best_pair if pair else best_unit)(u[keep], y[keep], experiments, selection, covariates, n_boot=0)
             for u, pair in zip((units_a, units_b), pairs)]
    report = ~selection[experiments]
    cov = None if covariates is None else covariates[report]
    y_rep = residualize(y[keep][report], cov)
    columns = [residualize(best.column(u[keep][report]), cov) for u, best in zip((units_a, units_b), picks)]
    e_rep = experiments[report]
    rows_of = experiment_rows(e_rep)

    def strength_gap(chosen):
        rows = rows_of(chosen)
        ra, rb = (correlations(column[rows, None], y_rep[rows])[0] for column in columns)
        return abs(ra) - abs(rb)

    low, high = bootstrap_interval(strength_gap, np.unique(e_rep), n_boot, seed)
    return {"difference": abs(picks[0].r_report) - abs(picks[1].r_report), "low": low, "high": high,
            "r_a": picks[0].r_report, "r_b": picks[1].r_report}


def units_of(stores: dict, saes: dict, model: str, kind: str, layer: int, targets: pd.DataFrame) -> np.ndarray:
    """One model's units of one kind (UNIT_KINDS; a latent pair is read from the latents) at one layer, at the
    store rows of a target table. Args: stores, saes: as profile takes them. Returns: [len(targets), k]."""
    if kind not in UNIT_KINDS:
        raise ValueError(f"unknown kind of unit {kind!r}; choose one of: {', '.join(UNIT_KINDS)}")
    if model not in stores or (kind != "residual dimension" and layer not in saes.get(model, {})):
        raise ValueError(f"no {kind} units of model {model!r} at layer {layer!r}: the stores hold models "
                         f"{list(stores)}, the SAEs {({m: sorted(s) for m, s in saes.items()})}")
    sae = None if kind == "residual dimension" else saes[model][layer].sae
    return units_at(stores[model], layer, targets.row.to_numpy(), sae)


def compare_at_best_layers(stores: dict, saes: dict, best: pd.DataFrame, targets: pd.DataFrame, *, target: str,
                           selection: np.ndarray, a: tuple, b: tuple, partial: bool = False, n_boot: int = 500,
                           seed: int = 0, extra_controls=()) -> dict:
    """compare_best for two (model, kind of unit) of a profile, each read at its own best layer.

    Args: best: best_layers of the profile of this target (indexed by model and kind of unit); a, b: the
    (model, kind) pairs compared, e.g. ("trained", "SAE latent") against ("untrained", "SAE latent"); rows
    of targets where the target is missing are left out. Returns: compare_best's dict.
    """
    rows = targets.dropna(subset=[target])
    units = [units_of(stores, saes, model, kind, int(best.loc[(model, kind), "layer"]), rows) for model, kind in (a, b)]
    return compare_best(*units, rows, target=target, selection=selection, partial=partial, n_boot=n_boot, seed=seed,
                        pairs=(a[1] == "SAE latent pair", b[1] == "SAE latent pair"), extra_controls=extra_controls)
