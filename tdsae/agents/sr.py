"""Successor representation (SR) learned by TD: the reference model of the Graph Learning Task.

M[s, j] estimates the discounted future occupancy of node j starting from s; it starts as the
identity (a node predicts only itself; the paper does not say, PAPERS.md §1.4.3). On s -> s':
    delta_vec = onehot(s) + gamma * M[s', :] - M[s, :],   M[s, :] += alpha * delta_vec.
Graph walk segments are not terminal (marked truncated), so the update always bootstraps; a true
terminal step (grid goal) drops the gamma term. The paper used alpha = 0.05, gamma = 0.99.

The TD error is a vector; how the paper reduced it to a scalar is not known. The default scalar
``td_error`` is delta_vec[s'], the error at the node actually observed next: it is signed like a
reward TD error (positive when s' was less expected after s than M[s, s'] said) and belongs to
one transition. extras also hold the whole vector and its L2 norm (an unsigned size of the update).
"""

from __future__ import annotations

import numpy as np

from tdsae.agents.base import Agent, check_param, uniform_legal
from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import Trajectory, Transition


class SRLearner(Agent):
    """TD-learned successor matrix; predicts the next node from the current row of M."""

    param_names = ("alpha", "gamma")

    def __init__(self, alpha=0.05, gamma=0.99):
        """Args: alpha learning rate in [0, 1]; gamma discount in [0, 1]."""
        self.alpha = check_param("alpha", alpha, 0.0, 1.0)
        self.gamma = check_param("gamma", gamma, 0.0, 1.0)

    def reset(self, n_experiments: int, task: Task) -> None:
        super().reset(n_experiments, task)
        self.m = np.tile(np.eye(task.n_states), (n_experiments, 1, 1))  # [n, S, S]
        self._extras: dict[str, np.ndarray] = {}

    def n_choices(self, task: Task) -> int:
        return task.n_states

    def choices(self, traj: Trajectory) -> np.ndarray:
        return np.where(traj.valid, traj.next_state, -1)

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        """P(next = j | s) proportional to M[s, j] over j != s.

        All nodes other than s count (the agent is not told the graph's edges); s itself is
        excluded because M[s, s] holds the current visit, and a walk never stays put. With no
        mass yet (M = identity) the prediction is uniform over the other nodes.
        """
        rows = np.arange(self.n)
        weights = self.m[rows, state].copy()
        weights[rows, state] = 0.0
        total = weights.sum(axis=1, keepdims=True)
        others = np.ones_like(weights, bool)
        others[rows, state] = False
        return np.where(total > 0, weights / np.where(total > 0, total, 1.0), uniform_legal(others))

    def update(self, tr: Transition) -> np.ndarray:
        rows, valid = np.arange(self.n), tr.valid
        s, s2 = np.where(valid, tr.state, 0), np.where(valid, tr.next_state, 0)
        terminal = tr.done & ~tr.truncated
        onehot = np.eye(self.task.n_states)[s]
        row = self.m[rows, s].copy()
        delta = onehot + (self.gamma_ * ~terminal)[:, None] * self.m[rows, s2] - row  # [n, S]
        self.m[rows[valid], s[valid]] += self.alpha_[valid, None] * delta[valid]
        self._extras = {"td_error_vector": delta, "td_error_norm": np.linalg.norm(delta, axis=1),
                        "sr_row": row}
        return np.where(valid, delta[rows, s2], np.nan)

    def step_extras(self) -> dict[str, np.ndarray]:
        """td_error_vector [n, S], td_error_norm [n], sr_row (M[s, :] before the update) [n, S]."""
        return self._extras
