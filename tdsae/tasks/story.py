"""Story text for pretrained LMs, written forward piece by piece as a player would: it only ever grows.

Each piece comes from the task (cover story, a day's opening, a question with its answer prefix,
the chosen answer, the outcome), so the text a model reads at a decision is a prefix of the text it
reads at every later one, and one KV cache per experiment serves a whole play
(tdsae.play.stories). Positions are recorded in characters; the player maps them to tokens.

Pieces are cut where a tokenizer would cut anyway, so that tokenizing them one by one gives the
tokens of the whole text: a piece never ends with a space (the space belongs to the next word) or
with more than one newline, and never starts with more than one whitespace character
(:func:`check_piece`; byte-level BPE tokenizers such as GPT-2's and SmolLM2's merge runs of
whitespace into one token).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tdsae.tasks.trajectory import Trajectory

if TYPE_CHECKING:
    from tdsae.tasks.environment import Task


def check_piece(piece: str) -> str:
    """The piece itself if its edges are ones a tokenizer cuts at (module docstring), else ValueError."""
    stripped_end = piece.rstrip()
    trailing, leading = piece[len(stripped_end):], piece[: len(piece) - len(piece.lstrip())]
    if piece and (trailing not in ("", "\n") or len(leading) > 1):
        raise ValueError(f"story piece {piece!r} ends with {trailing!r} or starts with {leading!r}: a piece may end "
                         "with at most one newline and no space, and start with at most one whitespace character, "
                         "so that tokenizing it alone cuts where tokenizing the whole story would")
    return piece


class StoryWriter:
    """One experiment's story, appended piece by piece as it is played.

    ``pieces`` holds everything written so far (``text`` joins them); ``positions()`` gives, per
    recorded step, the character the choice is read at (the last one before the answer) and the
    last character of the words that reveal its outcome.
    """

    def __init__(self, task: Task, experiment_info: dict, experiment: int):
        self.task, self.info, self.experiment = task, experiment_info, experiment
        self.pieces: list[str] = []
        self.length = 0
        self._decision: list[int] = []
        self._outcome: list[int] = []
        self._episode = -1
        self._write(task.story_intro(experiment_info, experiment))

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def _write(self, piece: str) -> str:
        if piece:
            self.pieces.append(check_piece(piece))
            self.length += len(piece)
        return piece

    def start_episode(self, state: int) -> str:
        """Append what opens the next episode. Returns: the piece appended."""
        self._episode += 1
        return self._write(self.task.story_opening(self.info, self.experiment, int(state), self._episode))

    def ask(self, state: int) -> str:
        """Append the question of the decision at state; the choice is read at the text's last character."""
        piece = self._write(self.task.story_question(self.info, self.experiment, int(state)))
        self._decision.append(self.length - 1)
        return piece

    def choices(self, state: int) -> list[str]:
        """The strings the model chooses between at state."""
        return self.task.story_choices(self.info, self.experiment, int(state))

    def answer(self, state: int, action: int) -> str:
        """Append the chosen answer (nothing for a task whose choice is a prediction, not an action)."""
        return self._write(self.choices(state)[int(action)] if action >= 0 and self.task.n_actions else "")

    def tell_outcome(self, state: int, action: int, reward: float, next_state: int, done: bool) -> str:
        """Append the outcome and record the character that reveals it. Returns: the piece appended."""
        piece, words = self.task.story_outcome(self.info, self.experiment, int(state), int(action), float(reward),
                                               int(next_state), bool(done))
        start = piece.rfind(words)
        if not words or start < 0:
            raise ValueError(f"outcome words {words!r} are not in the outcome piece {piece!r}")
        self._outcome.append(self.length + start + len(words.rstrip(",.")) - 1)
        return self._write(piece)

    def positions(self) -> dict[str, np.ndarray]:
        """Character indices per recorded step: "decision" and "outcome", each [n_valid_steps]."""
        return {"decision": np.array(self._decision, int), "outcome": np.array(self._outcome, int)}


def write_story(traj: Trajectory, experiment: int, task: Task) -> StoryWriter:
    """One experiment's whole story, written from its trajectory with the pieces a player appends."""
    writer = StoryWriter(task, traj.experiment_info, experiment)
    for t in np.nonzero(traj.valid[experiment])[0]:
        state, action = traj.state[experiment, t], traj.action[experiment, t]
        if traj.step[experiment, t] == 0:
            writer.start_episode(state)
        writer.ask(state)
        writer.answer(state, action)
        writer.tell_outcome(state, action, traj.reward[experiment, t], traj.next_state[experiment, t],
                            traj.done[experiment, t])
    return writer
