"""Tabular Q-learning with a softmax policy: the paper's reference model of TD learning.

Q starts at q_init (0 by default; the paper does not say, PAPERS.md §1.5). After each step
    delta = r + gamma * (1 - done) * max_a' Q(s', a') - Q(s, a),   Q(s, a) += alpha * delta,
with the max over actions legal in s'. The paper used alpha = 0.1 and gamma = 0.99 for the
Two-Step Task and Grid World (PAPERS.md §1.3).
"""

from __future__ import annotations

import numpy as np

from tdsae.agents.base import Agent, check_param, softmax_legal
from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import Transition


class QLearner(Agent):
    """Q-learning, P(a | s) proportional to exp(beta * Q(s, a)) over legal actions."""

    param_names = ("alpha", "beta", "gamma", "q_init")

    def __init__(self, alpha=0.1, beta=5.0, gamma=0.99, q_init=0.0, bootstrap_truncated: bool = False):
        """Args: alpha learning rate in [0, 1]; beta inverse temperature >= 0; gamma discount in
        [0, 1]; q_init initial Q; bootstrap_truncated: also bootstrap from s' when an episode was
        cut by the step cap (False: every episode end counts as terminal, as the brief's formula)."""
        self.alpha = check_param("alpha", alpha, 0.0, 1.0)
        self.beta = check_param("beta", beta, 0.0, np.finfo(float).max)
        self.gamma = check_param("gamma", gamma, 0.0, 1.0)
        self.q_init = check_param("q_init", q_init, -np.finfo(float).max, np.finfo(float).max)
        self.bootstrap_truncated = bootstrap_truncated

    def reset(self, n_experiments: int, task: Task) -> None:
        if task.n_actions == 0:
            raise ValueError(f"QLearner needs a task with actions; {task.name!r} has none (use SRLearner)")
        super().reset(n_experiments, task)
        self.q = np.broadcast_to(self.q_init_[:, None, None],
                                 (n_experiments, task.n_states, task.n_actions)).copy()  # [n, S, A]

    def q_values(self, state: np.ndarray) -> np.ndarray:
        return self.q[np.arange(self.n), state].copy()

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        return softmax_legal(self.q_values(state), self.beta_, self.task.legal_actions(state))

    def update(self, tr: Transition) -> np.ndarray:
        rows, valid = np.arange(self.n), tr.valid
        s, a = np.where(valid, tr.state, 0), np.where(valid, tr.action, 0)
        s2 = np.where(valid, tr.next_state, 0)
        best_next = np.where(self.task.legal_actions(s2), self.q[rows, s2], -np.inf).max(axis=1)
        ended = tr.done & ~tr.truncated if self.bootstrap_truncated else tr.done
        delta = tr.reward + self.gamma_ * np.where(ended, 0.0, best_next) - self.q[rows, s, a]
        self.q[rows[valid], s[valid], a[valid]] += self.alpha_[valid] * delta[valid]
        return np.where(valid, delta, np.nan)
