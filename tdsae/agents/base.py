"""What the reference agents share: per-experiment parameters, softmax, evaluation along a trajectory.

Every parameter may be a scalar or an array [n_experiments]: fitting many parameter settings at
once means repeating a trajectory's rows (``traj.select``) and passing one setting per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import Trajectory, Transition

TINY = 1e-300  # floor under probabilities before log, so a zero never gives -inf


def check_param(name: str, value, low: float, high: float) -> np.ndarray:
    """value as a float array if every element lies in [low, high], else ValueError naming it."""
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim > 1 or not np.all((array >= low) & (array <= high)):
        raise ValueError(f"{name} must be a scalar or 1-d array with values in [{low}, {high}], got {value!r}")
    return array


def softmax_legal(values: np.ndarray, beta: np.ndarray, legal: np.ndarray) -> np.ndarray:
    """P(a) proportional to exp(beta * value) over legal actions, 0 elsewhere.

    Args: values [n, k]; beta [n]; legal bool [n, k]. Returns: [n, k], rows sum to 1.
    """
    logits = np.where(legal, beta[:, None] * values, -np.inf)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def uniform_legal(legal: np.ndarray) -> np.ndarray:
    """Uniform over legal choices. Args: legal bool [n, k]. Returns: [n, k]."""
    return legal / legal.sum(axis=1, keepdims=True)


@dataclass
class Evaluation:
    """An agent's internal quantities along a trajectory (NaN on padded steps)."""

    probs: np.ndarray  # [n_experiments, n_steps, n_choices] choice probabilities before each step
    p_action: np.ndarray  # [n_experiments, n_steps] probability of the choice made; NaN where none
    loglik: np.ndarray  # [n_experiments] sum of log p_action over the counted steps
    q_values: np.ndarray | None  # [n_experiments, n_steps, n_actions] values at the state, before the update
    td_error: np.ndarray | None  # [n_experiments, n_steps] scalar prediction error of each update
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # agent-specific, [n_experiments, n_steps, ...]


class Agent:
    """Base class: subclasses set param_names, implement reset/choice_probs/update."""

    param_names: tuple[str, ...] = ()  # constructor arguments broadcast to [n_experiments] as name_

    def reset(self, n_experiments: int, task: Task) -> None:
        """Forget everything; broadcast parameters to [n_experiments]."""
        self.task, self.n = task, n_experiments
        for name in self.param_names:
            value = np.asarray(getattr(self, name), dtype=float)
            if value.ndim == 1 and value.shape[0] != n_experiments:
                raise ValueError(f"{name} has {value.shape[0]} values but there are {n_experiments} experiments")
            setattr(self, name + "_", np.broadcast_to(value, (n_experiments,)).copy())

    def n_choices(self, task: Task) -> int:
        """Size of the choice set: actions (graph-task predictors: next nodes)."""
        return task.n_actions

    def choices(self, traj: Trajectory) -> np.ndarray:
        """The choice made at each step, -1 where none. Returns: int [n_experiments, n_steps]."""
        return traj.action

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        """Choice probabilities in the current states. Args: state [n]. Returns: [n, n_choices]."""
        raise NotImplementedError

    def q_values(self, state: np.ndarray) -> np.ndarray | None:
        """Action values in state, [n, n_actions], or None for agents without values."""
        return None

    def update(self, tr: Transition) -> np.ndarray | None:
        """Learn from one step of every experiment (rows with tr.valid False are left alone).

        Returns: scalar prediction error [n] (NaN where not valid), or None.
        """
        raise NotImplementedError

    def step_extras(self) -> dict[str, np.ndarray]:
        """Extra per-experiment quantities of the last update, each [n, ...]."""
        return {}

    def loglik(self, task: Task, traj: Trajectory, choice_mask: np.ndarray | None = None) -> np.ndarray:
        """evaluate(task, traj, choice_mask).loglik without storing any per-step array (the fitter's
        inner loop). Returns: [n_experiments] sum of log P(choice) over the counted steps."""
        n, n_steps = traj.state.shape
        if choice_mask is not None and np.shape(choice_mask) != (n, n_steps):
            raise ValueError(f"choice_mask must have shape {(n, n_steps)}, got {np.shape(choice_mask)}")
        self.reset(n, task)
        choice = self.choices(traj)
        counted = traj.valid & (choice >= 0) if choice_mask is None else traj.valid & (choice >= 0) & choice_mask
        total = np.zeros(n)
        for t in range(n_steps):
            valid = traj.valid[:, t]
            if not valid.any():
                continue
            probs = self.choice_probs(np.where(valid, traj.state[:, t], 0))  # called on every valid step, as in evaluate
            rows = np.nonzero(counted[:, t])[0]
            if rows.size:
                picked = np.nan_to_num(probs[rows, choice[rows, t]])
                total[rows] += np.log(np.maximum(picked, TINY))
            self.update(Transition.from_column(traj, t))
        return total

    def evaluate(self, task: Task, traj: Trajectory, choice_mask: np.ndarray | None = None) -> Evaluation:
        """Replay a trajectory (the agent's own or an LM's) from a fresh reset.

        Args: task; traj [n_experiments, n_steps]; choice_mask bool [n_experiments, n_steps]
        restricting which steps count in loglik (e.g. traj.episode >= 7 to skip random episodes).
        Returns: Evaluation.
        """
        n, n_steps = traj.state.shape
        if choice_mask is not None and np.shape(choice_mask) != (n, n_steps):
            raise ValueError(f"choice_mask must have shape {(n, n_steps)}, got {np.shape(choice_mask)}")
        self.reset(n, task)
        probs = np.full((n, n_steps, self.n_choices(task)), np.nan)
        q_values = td_error = None
        extras: dict[str, np.ndarray] = {}
        for t in range(n_steps):
            valid = traj.valid[:, t]
            if not valid.any():
                continue
            state = np.where(valid, traj.state[:, t], 0)
            probs[valid, t] = self.choice_probs(state)[valid]
            values = self.q_values(state)
            if values is not None:
                if q_values is None:
                    q_values = np.full((n, n_steps, values.shape[1]), np.nan)
                q_values[valid, t] = values[valid]
            delta = self.update(Transition.from_column(traj, t))
            if delta is not None:
                if td_error is None:
                    td_error = np.full((n, n_steps), np.nan)
                td_error[valid, t] = delta[valid]
            for key, value in self.step_extras().items():
                if key not in extras:
                    extras[key] = np.full((n, n_steps) + value.shape[1:], np.nan)
                extras[key][valid, t] = value[valid]
        choice = self.choices(traj)
        made = traj.valid & (choice >= 0)
        picked = np.take_along_axis(probs, np.clip(choice, 0, None)[..., None], axis=2)[..., 0] \
            if probs.shape[2] else np.full((n, n_steps), np.nan)
        p_action = np.where(made, picked, np.nan)
        counted = made if choice_mask is None else made & choice_mask
        loglik = np.where(counted, np.log(np.maximum(np.nan_to_num(p_action), TINY)), 0.0).sum(axis=1)
        return Evaluation(probs, p_action, loglik, q_values, td_error, extras)
