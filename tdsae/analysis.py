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
    Returns: the index with
      - reward: the step's reward; last_reward: the latest reward the token has revealed (the step's
        own at an outcome token, the previous step's at a decision token, 0 before any);
      - td_error: the step's TD error, at outcome entries only (NaN at decisions);
      - q_chosen, q_diff: Q of the action taken, and Q of action 0 minus action 1 (with more than two
        actions, chosen minus the mean of the others), at decision entries only (NaN at outcomes).
    """
    from tdsae.agents import QLearner

    evaluation = QLearner(alpha=alpha, beta=1.0, gamma=gamma).evaluate(task, traj)
    e, c = index.experiment.to_numpy(), index.column.to_numpy()
    q = evaluation.q_values[e, c]  # [n, n_actions], values before the step's update
    action = traj.action[e, c]
    chosen = np.take_along_axis(q, np.clip(action, 0, None)[:, None], 1)[:, 0]
    others = (q.sum(1) - chosen) / max(1, q.shape[1] - 1)
    q_diff = q[:, 0] - q[:, 1] if q.shape[1] == 2 else chosen - others
    decision, outcome = (index.kind == "decision").to_numpy(), (index.kind == "outcome").to_numpy()
    return index.assign(reward=traj.reward[e, c], last_reward=_last_reward(traj, e, c, outcome),
                        td_error=np.where(outcome, evaluation.td_error[e, c], np.nan),
                        q_chosen=np.where(decision & (action >= 0), chosen, np.nan),
                        q_diff=np.where(decision & (action >= 0), q_diff, np.nan))


def _last_reward(traj, experiments: np.ndarray, columns: np.ndarray, revealed: np.ndarray) -> np.ndarray:
    """The latest reward known at a token: the step's own where revealed, else the previous valid step's."""
    rewards = np.where(traj.valid, traj.reward, np.nan)
    previous = pd.DataFrame(rewards).T.shift(1).ffill().fillna(0.0).T.to_numpy()  # previous valid step, per row
    return np.where(revealed, traj.reward[experiments, columns], previous[experiments, columns])


def covariates_of(targets: pd.DataFrame) -> np.ndarray:
    """What a partial correlation controls for: the latest reward the token has revealed and the step
    within the episode (one-hot). Returns: [n, k] without a constant column (residualize adds it)."""
    steps = pd.get_dummies(targets.step, prefix="step", drop_first=True).to_numpy(float)
    return np.column_stack([targets.last_reward.to_numpy(float), steps])


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
    partner: int = -1  # latent pairs only: the negatively tracking latent subtracted from unit
    scales: tuple = (1.0, 1.0)  # latent pairs only: s.d. of unit and partner on the selection half

    def column(self, units: np.ndarray) -> np.ndarray:
        """The chosen unit's values in units [n, k] (for a pair, unit / s.d. - partner / s.d.)."""
        if self.partner < 0:
            return np.asarray(units, float)[:, self.unit]
        return units[:, self.unit] / self.scales[0] - units[:, self.partner] / self.scales[1]


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


def best_pair(latents: np.ndarray, target: np.ndarray, experiments: np.ndarray, selection: np.ndarray,
              covariates: np.ndarray | None = None, n_boot: int = 200, seed: int = 0) -> BestUnit:
    """A signed target read by two ReLU latents: the most positively tracking one minus the most
    negatively tracking one (each scaled to unit s.d. on the selection half), both chosen on the
    selection half and reported on the other. A ReLU latent can fire on one side of zero only,
    so this is the fair SAE counterpart of a single signed residual dimension.
    """
    keep = np.isfinite(target)
    latents, target, experiments = np.asarray(latents, float)[keep], np.asarray(target, float)[keep], experiments[keep]
    covariates = None if covariates is None else np.asarray(covariates, float)[keep]
    chosen = selection[experiments]
    cov_sel = None if covariates is None else covariates[chosen]
    r_sel = correlations(residualize(latents[chosen], cov_sel), residualize(target[chosen], cov_sel))
    if np.isfinite(r_sel).sum() < 2 or np.nanmax(r_sel) <= 0 or np.nanmin(r_sel) >= 0:
        return best_unit(latents, target, experiments, selection, covariates, n_boot, seed)
    up, down = int(np.nanargmax(r_sel)), int(np.nanargmin(r_sel))
    scale = latents[chosen][:, [up, down]].std(0)
    pair = latents[:, up] / scale[0] - latents[:, down] / scale[1]
    best = best_unit(pair[:, None], target, experiments, selection, covariates, n_boot, seed)
    return BestUnit(up, best.r_select, best.r_report, best.low, best.high, best.n_report, partner=down,
                    scales=(float(scale[0]), float(scale[1])))


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


def shuffled_target(target: np.ndarray, experiments: np.ndarray, seed: int, mode: str = "rows") -> np.ndarray:
    """A null version of the target.

    mode "rows": every value permuted across all rows, breaking every association (the null for
    the search's own inflation). mode "experiments": each row takes another experiment's value at
    the same position in the run (its k-th row), so the task's structure (which step, how far into
    the run) is kept and only this experiment's history is lost: what a unit gains from that
    shared structure alone.
    """
    rng = np.random.default_rng(seed)
    target, experiments = np.asarray(target, float), np.asarray(experiments)
    if mode == "rows":
        return target[rng.permutation(len(target))]
    if mode != "experiments":
        raise ValueError(f"unknown shuffle mode {mode!r}; choose 'rows' or 'experiments'")
    shuffled = target.copy()
    ranks = pd.Series(experiments).groupby(experiments).cumcount().to_numpy()
    for rank in np.unique(ranks):
        rows = np.nonzero(ranks == rank)[0]
        shuffled[rows] = target[rows[rng.permutation(len(rows))]]
    return shuffled


def sr_targets(task, traj, index: pd.DataFrame, alpha: float = 0.05, gamma: float = 0.99) -> pd.DataFrame:
    """The successor-representation learner's quantities, aligned with a store's index entries.

    At outcome entries (the token of the node the walk reached): sr_td_error, the SR TD error at
    the observed next node (tdsae.agents.SRLearner's scalar), and sr_td_norm, the L2 norm of the
    whole TD-error vector; at decision entries (the current node): sr_surprise, 1 minus the SR's
    predicted probability of the node that came next. ``node`` is the node the entry's token names.
    """
    from tdsae.agents import SRLearner

    evaluation = SRLearner(alpha=alpha, gamma=gamma).evaluate(task, traj)
    e, c = index.experiment.to_numpy(), index.column.to_numpy()
    decision, outcome = (index.kind == "decision").to_numpy(), (index.kind == "outcome").to_numpy()
    predicted = np.take_along_axis(evaluation.probs[e, c], traj.next_state[e, c][:, None], 1)[:, 0]
    return index.assign(node=np.where(outcome, traj.next_state[e, c], traj.state[e, c]),
                        sr_td_error=np.where(outcome, evaluation.td_error[e, c], np.nan),
                        sr_td_norm=np.where(outcome, evaluation.extras["td_error_norm"][e, c], np.nan),
                        sr_surprise=np.where(decision, 1.0 - predicted, np.nan))
