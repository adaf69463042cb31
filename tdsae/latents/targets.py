"""The reference quantities a unit is asked to track, aligned with a store's index entries.

A Q-learner replayed on the very trajectories the model played (or read) gives per step a TD error
(read at the outcome token) and Q-values (read at the decision token); a successor-representation
learner gives the graph walks' SR TD errors. With them: what a partial correlation controls for,
the split of experiments into a selection and a report half, and shuffled targets (the nulls).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.agents import QLearner, SRLearner
from tdsae.validation import check_count, check_seed

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
        actions, chosen minus the mean of the others), at decision entries only (NaN at outcomes);
      - q_taken: Q of the step's action before its update, at both kinds of entry (the Q a TD error at the
        outcome is measured against).
    """
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
                        q_diff=np.where(decision & (action >= 0), q_diff, np.nan),
                        q_taken=np.where(action >= 0, chosen, np.nan))


def _last_reward(traj, experiments: np.ndarray, columns: np.ndarray, revealed: np.ndarray) -> np.ndarray:
    """The latest reward known at a token: the step's own where revealed, else the previous valid step's."""
    rewards = np.where(traj.valid, traj.reward, np.nan)
    previous = pd.DataFrame(rewards).T.shift(1).ffill().fillna(0.0).T.to_numpy()  # previous valid step, per row
    return np.where(revealed, traj.reward[experiments, columns], previous[experiments, columns])


def covariates_of(targets: pd.DataFrame, extra=()) -> np.ndarray:
    """What a partial correlation controls for: the latest reward the token has revealed and the step
    within the episode (one-hot), and any ``extra`` columns of the targets (e.g. "q_taken": a TD error is
    about r - Q, so controlling for Q as well leaves what neither explains). Returns: [n, k] without a
    constant column (residualize adds it)."""
    steps = pd.get_dummies(targets.step, prefix="step", drop_first=True).to_numpy(float)
    more = [targets[check_target(targets, column)].to_numpy(float) for column in extra]
    return np.column_stack([targets.last_reward.to_numpy(float), steps, *more])


def check_target(targets: pd.DataFrame, target: str) -> str:
    """``target`` if it is a column of a reference_targets table, else ValueError naming the columns it has."""
    quantities = [c for c in targets.columns if c not in ("experiment", "column", "step", "kind", "row")]
    if not isinstance(target, str) or target not in targets.columns:
        raise ValueError(f"unknown target {target!r}; these targets hold: {', '.join(map(str, quantities))}")
    return target


def split_experiments(n_experiments: int, seed: int) -> np.ndarray:
    """Which experiments select units (True) and which report them (False), half and half, seeded."""
    n_experiments = check_count(n_experiments, "n_experiments")
    rng = np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=(7,)))
    selection = np.zeros(n_experiments, bool)
    selection[rng.permutation(n_experiments)[: n_experiments // 2]] = True
    return selection


def shuffled_target(target: np.ndarray, experiments: np.ndarray, seed: int, mode: str = "rows") -> np.ndarray:
    """A null version of the target.

    mode "rows": every value permuted across all rows, breaking every association (the null for
    the search's own inflation). mode "experiments": each row takes another experiment's value at
    the same position in the run (its k-th row), so the task's structure (which step, how far into
    the run) is kept and only this experiment's history is lost: what a unit gains from that
    shared structure alone.
    """
    if mode not in ("rows", "experiments"):
        raise ValueError(f"unknown shuffle mode {mode!r}; choose 'rows' or 'experiments'")
    rng = np.random.default_rng(check_seed(seed))
    target, experiments = np.asarray(target, float), np.asarray(experiments)
    if mode == "rows":
        return target[rng.permutation(len(target))]
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
    evaluation = SRLearner(alpha=alpha, gamma=gamma).evaluate(task, traj)
    e, c = index.experiment.to_numpy(), index.column.to_numpy()
    decision, outcome = (index.kind == "decision").to_numpy(), (index.kind == "outcome").to_numpy()
    predicted = np.take_along_axis(evaluation.probs[e, c], traj.next_state[e, c][:, None], 1)[:, 0]
    return index.assign(node=np.where(outcome, traj.next_state[e, c], traj.state[e, c]),
                        sr_td_error=np.where(outcome, evaluation.td_error[e, c], np.nan),
                        sr_td_norm=np.where(outcome, evaluation.extras["td_error_norm"][e, c], np.nan),
                        sr_surprise=np.where(decision, 1.0 - predicted, np.nan))
