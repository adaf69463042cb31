"""Compact transcripts for the model organism, built piece by piece as a player would."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tdsae.tasks.trajectory import Trajectory

if TYPE_CHECKING:
    from tdsae.tasks.environment import Task

SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>")


class TranscriptBuilder:
    """One experiment's compact transcript, built piece by piece as it is played.

    The decision position of a step is the last token before its action (graph: before the next
    node); the outcome position is the first token after the action (reward, or next state).
    """

    def __init__(self, task: Task, experiment_info: dict, experiment: int):
        self.task = task
        self.state_tokens = task.transcript_state_tokens(experiment_info, experiment)
        self.tokens: list[str] = ["<bos>"]
        self._decision: list[int] = []
        self._outcome: list[int] = []
        self._episode = -1

    def start_episode(self, state: int) -> list[str]:
        """Append the episode-opening tokens. Returns: the tokens appended."""
        self._episode += 1
        new = self.task.transcript_episode_tokens(self.state_tokens, int(state), self._episode)
        self.tokens += new
        return new

    def choice_tokens(self, state: int) -> list[str]:
        """Tokens to compare at the decision in state (read at position len(tokens) - 1)."""
        return self.task.transcript_choice_tokens(self.state_tokens, int(state))

    def add_action(self, state: int, action: int) -> list[str]:
        """Record the decision position and append the action token. Returns: tokens appended."""
        self._decision.append(len(self.tokens) - 1)
        new = [] if action < 0 else [self.task.transcript_action_tokens(int(state))[int(action)]]
        self.tokens += new
        return new

    def add_outcome(self, state: int, action: int, reward: float, next_state: int, done: bool) -> list[str]:
        """Record the outcome position and append reward / next-state tokens. Returns: tokens appended."""
        self._outcome.append(len(self.tokens))
        new = self.task.transcript_outcome_tokens(self.state_tokens, int(state), int(action),
                                                  float(reward), int(next_state), bool(done))
        self.tokens += new
        return new

    def positions(self) -> dict[str, np.ndarray]:
        """Token indices per recorded step: "decision" and "outcome", each [n_valid_steps]."""
        return {"decision": np.array(self._decision, int), "outcome": np.array(self._outcome, int)}


def episode_columns(traj: Trajectory, experiment: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Split one experiment's valid columns into finished episodes and the running one.

    Returns: (list of column-index arrays of finished episodes, columns of the running episode).
    """
    cols = np.nonzero(traj.valid[experiment])[0]
    episodes = [cols[traj.episode[experiment, cols] == e] for e in np.unique(traj.episode[experiment, cols])]
    if episodes and not traj.done[experiment, episodes[-1][-1]]:
        return episodes[:-1], episodes[-1]
    return episodes, np.array([], int)
