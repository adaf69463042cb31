"""Which latents (or residual dimensions) track TD errors and Q-values, with the controls that
keep the claim honest.

The reference model is a Q-learner replayed on the very trajectories the model played (or read),
giving per step a TD error (read at the outcome token) and Q-values (read at the decision token).
Every search for "the best unit" is made on one half of the experiments and reported on the
other, so the maximum over hundreds of latents cannot flatter itself; dead units (constant,
hence NaN correlations) can never win. Signed targets are searched by |r| and reported with
their sign: a ReLU latent can only fire on one side of zero, so a signed quantity usually splits
into a positive and a negative latent.

Controls, each a row of the same tidy tables: the reward alone; partial correlations with the
reward (and the step within the episode) regressed out of both sides; shuffled targets; the same
analysis on an untrained network of the same architecture reading the same episodes; reference
Q-learners with other learning rates and discounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TARGETS = {"td_error": "outcome", "q_chosen": "decision", "q_diff": "decision"}  # target -> token kind it is read at


def reference_targets(task, traj, index: pd.DataFrame, alpha=0.1, gamma: float = 0.99) -> pd.DataFrame:
    """A Q-learner's quantities, aligned with a store's index entries.

    Args: task, traj: what was played; index: ActivationStore.index; alpha: learning rate, a scalar
    or [n_experiments] (true agents); gamma: discount. The inverse temperature plays no part.
    Returns: the index with reward, td_error (the step's TD error), q_chosen (Q of the action
    taken), q_diff (Q of action 0 minus action 1 with two actions; chosen minus the mean of the
    others with more), each NaN where it is not defined.
    """
    from tdsae.agents import QLearner

    evaluation = QLearner(alpha=alpha, beta=1.0, gamma=gamma).evaluate(task, traj)
    e, c = index.experiment.to_numpy(), index.column.to_numpy()
    q = evaluation.q_values[e, c]  # [n, n_actions], values before the step's update
    action = traj.action[e, c]
    chosen = np.take_along_axis(q, np.clip(action, 0, None)[:, None], 1)[:, 0]
    others = (q.sum(1) - chosen) / max(1, q.shape[1] - 1)
    q_diff = q[:, 0] - q[:, 1] if q.shape[1] == 2 else chosen - others
    return index.assign(reward=traj.reward[e, c], td_error=evaluation.td_error[e, c],
                        q_chosen=np.where(action >= 0, chosen, np.nan), q_diff=np.where(action >= 0, q_diff, np.nan))


def covariates_of(targets: pd.DataFrame) -> np.ndarray:
    """What a partial correlation controls for: the reward and the step within the episode (one-hot).
    Returns: [n, k] without a constant column (residualize adds the intercept)."""
    steps = pd.get_dummies(targets.step, prefix="step", drop_first=True).to_numpy(float)
    return np.column_stack([targets.reward.to_numpy(float), steps])


def residualize(values: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """values [n] or [n, k] minus their least-squares fit on an intercept and covariates [n, c]."""
    values = np.asarray(values, float)
    design = np.ones((len(values), 1)) if covariates is None else np.column_stack([np.ones(len(values)), covariates])
    coef, *_ = np.linalg.lstsq(design, values, rcond=None)
    return values - design @ coef


def correlations(units: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r of every column of units [n, k] with target [n]; NaN for a constant column."""
    units = np.asarray(units, float)
    centred, y = units - units.mean(0), np.asarray(target, float) - np.mean(target)
    scale = np.sqrt((centred ** 2).sum(0) * (y ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (centred * y[:, None]).sum(0) / scale
    return np.where(scale > 1e-12, r, np.nan)


def split_experiments(n_experiments: int, seed: int) -> np.ndarray:
    """Which experiments select units (True) and which report them (False), half and half, seeded."""
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(7,)))
    selection = np.zeros(n_experiments, bool)
    selection[rng.permutation(n_experiments)[: n_experiments // 2]] = True
    return selection


@dataclass
class BestUnit:
    """The unit chosen on the selection half and how it does on the report half."""

    unit: int  # column index (latent or residual dimension); -1 if every unit was dead
    r_select: float  # its correlation on the selection half (inflated by the search)
    r_report: float  # its correlation on the report half: the number to believe
    low: float  # 95% bootstrap interval of r_report, resampling report experiments
    high: float
    n_report: int  # rows in the report half


def best_unit(units: np.ndarray, target: np.ndarray, experiments: np.ndarray, selection: np.ndarray,
              covariates: np.ndarray | None = None, n_boot: int = 200, seed: int = 0) -> BestUnit:
    """Pick the unit with the largest |r| on the selection half, report it on the other half.

    Args: units [n, k]; target [n]; experiments [n] experiment of each row; selection
    [n_experiments] bool from split_experiments; covariates [n, c]: regressed out of units and
    target within each half before correlating (a partial correlation); rows with a NaN target
    are dropped.
    """
    keep = np.isfinite(target)
    units, target, experiments = np.asarray(units, float)[keep], np.asarray(target, float)[keep], experiments[keep]
    covariates = None if covariates is None else np.asarray(covariates, float)[keep]
    halves = []
    for chosen in (True, False):
        rows = selection[experiments] == chosen
        cov = None if covariates is None else covariates[rows]
        halves.append((residualize(units[rows], cov), residualize(target[rows], cov), experiments[rows]))
    (u_sel, y_sel, _), (u_rep, y_rep, e_rep) = halves
    r_sel = correlations(u_sel, y_sel)
    if not np.isfinite(r_sel).any():
        return BestUnit(-1, np.nan, np.nan, np.nan, np.nan, len(y_rep))
    unit = int(np.nanargmax(np.abs(r_sel)))
    column = u_rep[:, unit]
    r_rep = float(correlations(column[:, None], y_rep)[0])
    low, high = _bootstrap_interval(column, y_rep, e_rep, n_boot, seed)
    return BestUnit(unit, float(r_sel[unit]), r_rep, low, high, len(y_rep))


def _bootstrap_interval(x: np.ndarray, y: np.ndarray, experiments: np.ndarray, n_boot: int, seed: int):
    """95% percentile interval of r(x, y), resampling whole experiments with replacement."""
    if n_boot <= 0:
        return np.nan, np.nan
    rng = np.random.default_rng(seed)
    labels, groups = np.unique(experiments, return_inverse=True)
    members = [np.nonzero(groups == g)[0] for g in range(len(labels))]
    draws = []
    for _ in range(n_boot):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(labels), len(labels))])
        draws.append(correlations(x[rows, None], y[rows])[0])
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return float(low), float(high)


def shuffled_target(target: np.ndarray, experiments: np.ndarray, seed: int) -> np.ndarray:
    """The target with whole experiments' sequences exchanged: each row keeps its position in the
    run but takes another experiment's value there (experiments of equal length exchange whole;
    rows without a partner are permuted among themselves)."""
    rng = np.random.default_rng(seed)
    target, experiments = np.asarray(target, float), np.asarray(experiments)
    shuffled = target.copy()
    ranks = pd.Series(experiments).groupby(experiments).cumcount().to_numpy()
    for rank in np.unique(ranks):
        rows = np.nonzero(ranks == rank)[0]
        shuffled[rows] = target[rows[rng.permutation(len(rows))]]
    return shuffled


def unit_profile(units_by_layer: dict, targets: pd.DataFrame, selection: np.ndarray, target: str,
                 partial: bool = False, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Best unit per layer for one target.

    Args: units_by_layer: {layer: [n_entries, k] values of the units at every index entry of the
    target's kind (rows of ``targets``)}; targets: reference_targets rows of that kind.
    Returns: one row per layer: layer, unit, r_select, r_report, low, high, n_report.
    """
    covariates = covariates_of(targets) if partial else None
    rows = []
    for layer, units in units_by_layer.items():
        best = best_unit(units, targets[target].to_numpy(float), targets.experiment.to_numpy(), selection,
                         covariates, n_boot, seed)
        rows.append({"layer": layer, **best.__dict__})
    return pd.DataFrame(rows)


def alpha_sweep(task, traj, targets: pd.DataFrame, units: np.ndarray, selection: np.ndarray, alphas, gamma: float,
                target: str = "td_error", partial: bool = True) -> pd.DataFrame:
    """How well the best unit tracks the target of reference Q-learners with other learning rates.

    The unit is chosen afresh for each alpha on the selection half. Returns: alpha, r_report, low, high.
    """
    rows = []
    for alpha in alphas:
        swept = reference_targets(task, traj, targets, alpha, gamma)
        covariates = covariates_of(swept) if partial else None
        best = best_unit(units, swept[target].to_numpy(float), swept.experiment.to_numpy(), selection, covariates)
        rows.append({"alpha": float(alpha), "r_report": best.r_report, "low": best.low, "high": best.high})
    return pd.DataFrame(rows)


def units_at(store, layer: int, rows, sae=None) -> np.ndarray:
    """The units of one layer at the given store rows: raw residual dimensions [n, d_model], or the
    latents of ``sae`` (a tdsae.sae.SAE) [n, d_sae]."""
    import torch

    acts = store.acts(layer, rows)
    if sae is None:
        return acts
    with torch.no_grad():
        return sae.encode(torch.as_tensor(acts, dtype=sae.W_enc.dtype, device=sae.device)).float().cpu().numpy()


def profile(stores: dict, saes: dict, targets: pd.DataFrame, target: str, selection: np.ndarray,
            partial: bool = False, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Best SAE latent and best residual dimension per layer, for every model, on one target.

    Args: stores: {model label: ActivationStore} (the same episodes, so the same index);
    saes: {model label: {layer: LayerSAE}}; targets: reference_targets rows of the target's kind.
    Returns: rows of model, units ("SAE latent" or "residual dimension"), layer, unit, r_select,
    r_report, low, high, n_report.
    """
    frames = []
    rows = targets.row.to_numpy()
    for label, store in stores.items():
        for kind, by_layer in (("SAE latent", saes.get(label, {})),
                               ("residual dimension", {layer: None for layer in store.layers})):
            units = {layer: units_at(store, layer, rows, None if entry is None else entry.sae)
                     for layer, entry in sorted(by_layer.items())}
            table = unit_profile(units, targets, selection, target, partial, n_boot, seed)
            frames.append(table.assign(model=label, units=kind))
    columns = ["model", "units", "layer", "unit", "r_select", "r_report", "low", "high", "n_report"]
    return pd.concat(frames, ignore_index=True)[columns]
