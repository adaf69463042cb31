"""Heuristic alternatives to TD learning: win-stay-lose-shift, copy the best episode, random.

The two memory heuristics remember, per state, the action taken there in an episode (if a state
was visited several times in one episode, the last visit counts) and decide only from finished
episodes. Each mixes with a uniform lapse of probability epsilon, so no choice has probability 0
and likelihoods stay finite.
"""

from __future__ import annotations

import numpy as np

from tdsae.agents.base import Agent, check_param, uniform_legal
from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import Trajectory, Transition


class EpisodeMemory(Agent):
    """Tracks the running episode's actions per state and its total reward; subclasses decide."""

    def reset(self, n_experiments: int, task: Task) -> None:
        if task.n_actions == 0:
            raise ValueError(f"{type(self).__name__} needs a task with actions; {task.name!r} has none")
        super().reset(n_experiments, task)
        self.running_action = np.full((n_experiments, task.n_states), -1)  # [n, S], -1 = not visited
        self.running_return = np.zeros(n_experiments)  # [n] reward so far in the episode

    def update(self, tr: Transition) -> None:
        rows = np.nonzero(tr.valid)[0]
        self.running_action[rows, tr.state[rows]] = tr.action[rows]
        self.running_return[rows] += tr.reward[rows]
        ended = np.nonzero(tr.valid & tr.done)[0]
        if ended.size:
            self.finish_episodes(ended)
            self.running_action[ended] = -1
            self.running_return[ended] = 0.0
        return None

    def finish_episodes(self, rows: np.ndarray) -> None:
        """Fold the just-finished episodes of these experiments into memory."""
        raise NotImplementedError

    def lapse(self, probs: np.ndarray, legal: np.ndarray) -> np.ndarray:
        """(1 - epsilon) * probs + epsilon * uniform over legal actions."""
        eps = self.epsilon_[:, None]
        return (1.0 - eps) * probs + eps * uniform_legal(legal)


class WinStayLoseShift(EpisodeMemory):
    """Repeat the action last taken in this state if that episode was rewarded, else switch.

    "Last taken" means in the most recent finished episode that visited the state (for states
    visited every episode, the previous episode). Switching picks uniformly among the other
    legal actions; a state never visited gets a uniform choice.
    """

    param_names = ("epsilon",)

    def __init__(self, epsilon=0.1):
        """Args: epsilon lapse probability in [0, 1]."""
        self.epsilon = check_param("epsilon", epsilon, 0.0, 1.0)

    def reset(self, n_experiments: int, task: Task) -> None:
        super().reset(n_experiments, task)
        self.last_action = np.full((n_experiments, task.n_states), -1)  # [n, S]
        self.last_won = np.zeros((n_experiments, task.n_states), bool)  # [n, S] that episode paid

    def finish_episodes(self, rows: np.ndarray) -> None:
        visited = self.running_action[rows] >= 0
        self.last_action[rows] = np.where(visited, self.running_action[rows], self.last_action[rows])
        won = (self.running_return[rows] > 0)[:, None]
        self.last_won[rows] = np.where(visited, won, self.last_won[rows])

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        rows = np.arange(self.n)
        legal = self.task.legal_actions(state)
        last, won = self.last_action[rows, state], self.last_won[rows, state]
        repeat = np.eye(self.task.n_actions, dtype=bool)[np.clip(last, 0, None)] & legal
        repeat = np.where(repeat.any(axis=1, keepdims=True), repeat, legal)
        others = legal & ~repeat
        others = np.where(others.any(axis=1, keepdims=True), others, legal)
        pick = np.where((last < 0)[:, None], legal, np.where(won[:, None], repeat, others))
        return self.lapse(uniform_legal(pick), legal)


class CopyBestEpisode(EpisodeMemory):
    """The OpenReview reviewer's alternative: copy the best episode so far.

    Find the finished episode with the highest total reward (ties: the most recent) and repeat the
    action it took in the current state; uniform if it never visited the state.
    """

    param_names = ("epsilon",)

    def __init__(self, epsilon=0.1):
        """Args: epsilon lapse probability in [0, 1]."""
        self.epsilon = check_param("epsilon", epsilon, 0.0, 1.0)

    def reset(self, n_experiments: int, task: Task) -> None:
        super().reset(n_experiments, task)
        self.best_action = np.full((n_experiments, task.n_states), -1)  # [n, S] of the best episode
        self.best_return = np.full(n_experiments, -np.inf)  # [n]

    def finish_episodes(self, rows: np.ndarray) -> None:
        better = rows[self.running_return[rows] >= self.best_return[rows]]
        self.best_action[better] = self.running_action[better]
        self.best_return[better] = self.running_return[better]

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        rows = np.arange(self.n)
        legal = self.task.legal_actions(state)
        best = self.best_action[rows, state]
        copy = np.eye(self.task.n_actions, dtype=bool)[np.clip(best, 0, None)] & legal
        pick = np.where((best >= 0)[:, None] & copy.any(axis=1, keepdims=True), copy, legal)
        return self.lapse(uniform_legal(pick), legal)


class RandomAgent(Agent):
    """Uniform over legal actions; on the graph task, uniform over all nodes as the next node."""

    def reset(self, n_experiments: int, task: Task) -> None:
        super().reset(n_experiments, task)

    def n_choices(self, task: Task) -> int:
        return task.n_actions or task.n_states

    def choices(self, traj: Trajectory) -> np.ndarray:
        if self.task.n_actions == 0:
            return np.where(traj.valid, traj.next_state, -1)
        return traj.action

    def choice_probs(self, state: np.ndarray) -> np.ndarray:
        if self.task.n_actions == 0:
            return np.full((len(state), self.task.n_states), 1.0 / self.task.n_states)
        return uniform_legal(self.task.legal_actions(state))

    def update(self, tr: Transition) -> None:
        return None
