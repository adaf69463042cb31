"""Model-based learners: they know the task's dynamics and learn only where reward is.

Two-Step Task (Daw et al., 2011): second-stage values Q2[planet, alien] learn by the delta rule
Q2 += alpha * (r - Q2); first-stage values are planned,
    Q_MB(start, a) = gamma * sum_planet P(planet | a) * max_alien Q2[planet, alien],
with the told 0.7 / 0.3 transition probabilities.

Grid World: the agent knows how moves change cells and that finding the reward ends the day;
it learns R[cell], the reward on entering a cell, by the delta rule. Since the one reward is 1,
R[cell] also estimates the chance that the cell ends the day, so values are planned by a bounded
number of value-iteration sweeps of
    Q(s, a) = R[s'] + gamma * (1 - R[s']) * max_a' Q(s', a'),   s' = move(s, a).

``td_error`` of these agents is the prediction error that drives their learning (r minus the
predicted reward); it is NaN at two-step first-stage steps, where nothing is learned.
HybridLearner mixes model-based and model-free (Q-learning) first-stage values with weight w.
"""

from __future__ import annotations

import numpy as np

from tdsae.agents.base import Agent, check_param, softmax_legal
from tdsae.agents.qlearning import QLearner
from tdsae.tasks.environment import Task
from tdsae.tasks.gridworld import GridWorldTask
from tdsae.tasks.trajectory import Transition
from tdsae.tasks.twostep import TwoStepTask
from tdsae.validation import check_count


def plan_twostep(second_stage: np.ndarray, transition_probs: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Model-based first-stage values. Args: second_stage [n, 2 planets, 2 aliens];
    transition_probs [2 actions, 2 planets]; gamma [n]. Returns: [n, 2 actions]."""
    return gamma[:, None] * (second_stage.max(axis=2) @ transition_probs.T)


class ModelBasedLearner(Agent):
    """Learns rewards, knows dynamics, plans; softmax with inverse temperature beta."""

    param_names = ("alpha", "beta", "gamma")

    def __init__(self, alpha=0.1, beta=5.0, gamma=0.99, n_iterations: int = 25):
        """Args: alpha reward learning rate in [0, 1]; beta inverse temperature >= 0; gamma
        discount in [0, 1]; n_iterations value-iteration sweeps per plan (grid world; 25 exceeds
        the longest shortest path of a 9 x 9 grid)."""
        self.alpha = check_param("alpha", alpha, 0.0, 1.0)
        self.beta = check_param("beta", beta, 0.0, np.finfo(float).max)
        self.gamma = check_param("gamma", gamma, 0.0, 1.0)
        self.n_iterations = check_count(n_iterations, "n_iterations")

    def reset(self, n_experiments: int, task: Task) -> None:
        if not isinstance(task, (TwoStepTask, GridWorldTask)):
            raise ValueError(f"ModelBasedLearner supports twostep and gridworld, not {task.name!r}")
        super().reset(n_experiments, task)
        if isinstance(task, TwoStepTask):
            self.second_stage = np.zeros((n_experiments, 2, 2))  # [n, planet, alien]
        else:
            self.cell_reward = np.zeros((n_experiments, task.n_states))  # [n, S]
            self.moves = task.move_table()  # [S, A]
            self._plan = np.zeros((n_experiments, task.n_states, task.n_actions))  # cached Q [n, S, A]
            self._stale = np.ones(n_experiments, bool)  # [n] rows whose cell_reward changed since planning

    def q_values(self, state: np.ndarray) -> np.ndarray:
        rows = np.arange(self.n)
        if isinstance(self.task, TwoStepTask):
            first = plan_twostep(self.second_stage, self.task.transition_probs(), self.gamma_)
            second = self.second_stage[rows, np.clip(state - 1, 0, 1)]
            return np.where((state == 0)[:, None], first, second)
        return self._planned()[rows, state]

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        return softmax_legal(self.q_values(state), self.beta_, self.task.legal_actions(state))

    def _planned(self) -> np.ndarray:
        rows = np.nonzero(self._stale)[0]
        if rows.size:  # value iteration only where the reward map changed
            reward = self.cell_reward[rows][:, self.moves]  # [k, S, A]: reward on arriving via (s, a)
            keep = self.gamma_[rows, None, None] * (1.0 - reward)
            value = np.zeros((rows.size, self.task.n_states))
            for _ in range(self.n_iterations):
                q = reward + keep * value[:, self.moves]
                value = q.max(axis=2)
            self._plan[rows] = q
            self._stale[rows] = False
        return self._plan

    def update(self, tr: Transition) -> np.ndarray:
        rows, valid = np.arange(self.n), tr.valid
        if isinstance(self.task, TwoStepTask):
            learn = valid & (tr.state > 0)
            planet, alien = np.clip(tr.state - 1, 0, 1), np.clip(tr.action, 0, 1)
            delta = tr.reward - self.second_stage[rows, planet, alien]
            self.second_stage[rows[learn], planet[learn], alien[learn]] += self.alpha_[learn] * delta[learn]
        else:
            learn = valid
            cell = np.where(valid, tr.next_state, 0)
            delta = tr.reward - self.cell_reward[rows, cell]
            self.cell_reward[rows[learn], cell[learn]] += self.alpha_[learn] * delta[learn]
            self._stale |= learn & (delta != 0)
        return np.where(learn, delta, np.nan)


class HybridLearner(QLearner):
    """Daw et al. (2011) hybrid for the Two-Step Task: first-stage value
    w * Q_MB + (1 - w) * Q_MF, where Q_MF and the second-stage values are the Q-learner's table
    and Q_MB is planned from those second-stage values. w = 0 is QLearner; w = 1 is
    ModelBasedLearner with the same alpha, beta, gamma. td_error is the Q-learning TD error."""

    param_names = QLearner.param_names + ("w",)

    def __init__(self, alpha=0.1, beta=5.0, w=0.5, gamma=0.99, q_init=0.0):
        """Args: as QLearner; w weight of model-based first-stage values in [0, 1]."""
        super().__init__(alpha=alpha, beta=beta, gamma=gamma, q_init=q_init)
        self.w = check_param("w", w, 0.0, 1.0)

    def reset(self, n_experiments: int, task: Task) -> None:
        if not isinstance(task, TwoStepTask):
            raise ValueError(f"HybridLearner supports only the twostep task, not {task.name!r}")
        super().reset(n_experiments, task)

    def q_values(self, state: np.ndarray) -> np.ndarray:
        free = self.q[np.arange(self.n), state]
        based = plan_twostep(self.q[:, 1:], self.task.transition_probs(), self.gamma_)
        mixed = self.w_[:, None] * based + (1.0 - self.w_[:, None]) * free
        return np.where((state == 0)[:, None], mixed, free)
