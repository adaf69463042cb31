"""Grid World: find the one rewarded cell of a small grid.

The paper gives no details of its Grid World (PAPERS.md §1.4.2); this is the project's
reconstruction: a size x size grid (5 x 5), actions up/down/left/right, a move into the edge
leaves the state unchanged, one goal cell and one start cell per experiment (drawn from the seed,
distinct), reward 1 and episode end on reaching the goal, and a cap of max_steps moves (12) after
which the episode ends with reward 0 (marked info["truncated"]). State s is cell
(row, col) = divmod(s, size), row 0 at the top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdsae.tasks.environment import Task
from tdsae.validation import check_count

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (d_row, d_col) of up, down, left, right


@dataclass(frozen=True)
class GridWorldTask(Task):
    """Grid world with one goal per experiment; every action is legal everywhere."""

    size: int = 5  # rows = columns; at most 9 so that cell tokens stay unambiguous
    max_steps: int = 12  # moves per episode before it ends without reward

    name = "gridworld"
    n_actions = 4
    action_names = ("up", "down", "left", "right")

    def __post_init__(self):
        check_count(self.max_steps, "max_steps")
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) \
                or not 2 <= self.size <= 9:
            raise ValueError(f"size must be an int in 2..9, got {self.size!r}")

    @property
    def n_states(self) -> int:
        return self.size * self.size

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(self.cell_name(s) for s in range(self.n_states))

    def cell_name(self, state: int) -> str:
        """Story name of a cell, 1-based: "row 2, column 3"."""
        row, col = divmod(int(state), self.size)
        return f"row {row + 1}, column {col + 1}"

    def move_table(self) -> np.ndarray:
        """Deterministic dynamics: next cell of each (cell, action). Returns: int [n_states, n_actions]."""
        rows, cols = np.divmod(np.arange(self.n_states), self.size)
        table = np.empty((self.n_states, self.n_actions), int)
        for a, (dr, dc) in enumerate(MOVES):
            r, c = rows + dr, cols + dc
            inside = (r >= 0) & (r < self.size) & (c >= 0) & (c < self.size)
            table[:, a] = np.where(inside, r * self.size + c, np.arange(self.n_states))
        return table

    def draw_experiments(self, rngs):
        goal = np.array([rng.integers(self.n_states) for rng in rngs])
        start = np.array([rng.integers(self.n_states - 1) for rng in rngs])
        return {"goal": goal, "start": start + (start >= goal)}  # start skips the goal cell

    def start_states(self, params, episode, state):
        return params["start"].copy()

    def transition(self, params, state, action, noise):
        next_state = self.move_table()[state, action]
        terminal = next_state == params["goal"]
        return next_state, terminal.astype(float), terminal, {}

    # story renderer: a forward-written log of days and moves, one short line a move. A
    # question before every move would be ~30 of a move's ~40 tokens, and the cost of reading
    # a story grows with the square of its length, so the intro states the format once.
    def story_intro(self, experiment_info, experiment):
        return (f"You are exploring a grid of {self.size} rows and {self.size} columns to find a treasure. "
                "Row 1 is at the top and column 1 is on the left.\n"
                "Each day you start at the same place and the treasure is at the same place.\n"
                "In each move you can go up, down, left or right; moving into the edge of the grid "
                "leaves you where you are.\n"
                f"A day ends when you find the treasure or after {self.max_steps} moves.\n"
                "Your goal is to find the treasure as quickly as possible.\n"
                "Each line below is one move: the direction you chose, then where you are after it.\n")

    def story_opening(self, experiment_info, experiment, state, episode):
        return f"\nDay {episode + 1}. You start at {self.cell_name(state)}.\n"

    def story_question(self, experiment_info, experiment, state):
        # where you are was just told (the day's opening or the last move's line)
        return "Move"

    def story_choices(self, experiment_info, experiment, state):
        return [" " + name for name in self.action_names]

    def story_outcome(self, experiment_info, experiment, state, action, reward, next_state, done):
        if next_state == state:  # a move into the edge
            move = f"the edge, still at {self.cell_name(state)}"
        else:
            move = self.cell_name(next_state)
        if not done:
            return f": {move}.\n", move
        # the day's end says whether the goal was reached: that is the outcome a learner needs
        words = "and found the treasure" if reward > 0 else "and did not find the treasure"
        return f": {move}, {words}.\n", words

    # transcript renderer
    def transcript_state_tokens(self, experiment_info, experiment):
        return [f"gw:c{r}{c}" for r in range(self.size) for c in range(self.size)]

    def transcript_action_tokens(self, state):
        return ["gw:" + name for name in self.action_names]

    def transcript_episode_tokens(self, state_tokens, state, episode):
        return ["gw:ep", state_tokens[state]]  # the start cell can recur, so mark the start

    def transcript_outcome_tokens(self, state_tokens, state, action, reward, next_state, done):
        return ["gw:r1" if reward > 0 else "gw:r0"] + ([] if done else [state_tokens[next_state]])

    def transcript_tokens(self):
        return (set(self.transcript_state_tokens({}, 0)) | set(self.transcript_action_tokens(0))
                | {"gw:ep", "gw:r0", "gw:r1"})
