"""The paper's three tasks (Two-Step Task, Grid World, Graph Learning Task) and their renderers.

Every task plays many experiments in lockstep (``task.reset_experiments``), records a padded
``Trajectory`` and renders it two ways: a story, written forward, for pretrained LLMs and a compact
word-level transcript for the model organism, whose tokens all come from one shared vocabulary.
"""

from __future__ import annotations

import numpy as np

from tdsae.tasks.environment import Environment, Task, run_agent
from tdsae.tasks.graph import NOUNS, GraphTask
from tdsae.tasks.gridworld import GridWorldTask
from tdsae.tasks.story import StoryWriter, check_piece, write_story
from tdsae.tasks.trajectory import Trajectory, Transition
from tdsae.tasks.transcript import SPECIAL_TOKENS, TranscriptBuilder, episode_columns
from tdsae.tasks.twostep import TwoStepTask

TASKS = {"graph": GraphTask, "gridworld": GridWorldTask, "twostep": TwoStepTask}

__all__ = [
    "Environment", "GraphTask", "GridWorldTask", "NOUNS", "SPECIAL_TOKENS", "StoryWriter", "TASKS", "Task",
    "TranscriptBuilder", "Trajectory", "Transition", "TwoStepTask", "check_piece", "episode_columns", "get_task",
    "render_story_prompt", "render_transcript", "run_agent", "story_action_strings",
    "transcript_vocabulary", "write_story",
]


def get_task(name: str, **params) -> Task:
    """A task by registry name ("graph", "gridworld", "twostep") with its parameters."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}")
    return TASKS[name](**params)


def transcript_vocabulary() -> list[str]:
    """Every token any task (default parameters) can emit, plus the special tokens, sorted."""
    tokens = set(SPECIAL_TOKENS)
    for name in TASKS:
        tokens |= get_task(name).transcript_tokens()
    return sorted(tokens)


def render_transcript(traj: Trajectory, experiment: int, task: Task | None = None
                      ) -> tuple[list[str], dict[str, np.ndarray]]:
    """One experiment's transcript, built from the same pieces a player appends step by step.

    Args: traj; experiment: row; task: defaults to get_task(traj.task).
    Returns: (tokens, {"decision": [n_valid_steps], "outcome": [n_valid_steps]}) token indices,
    aligned with the experiment's valid steps in column order.
    """
    task = get_task(traj.task) if task is None else task
    builder = TranscriptBuilder(task, traj.experiment_info, experiment)
    for t in np.nonzero(traj.valid[experiment])[0]:
        state, action = traj.state[experiment, t], traj.action[experiment, t]
        if traj.step[experiment, t] == 0:
            builder.start_episode(state)
        builder.add_action(state, action)
        builder.add_outcome(state, action, traj.reward[experiment, t],
                            traj.next_state[experiment, t], traj.done[experiment, t])
    return builder.tokens, builder.positions()


def render_story_prompt(traj: Trajectory, experiment: int, column: int, task: Task | None = None) -> str:
    """The story a pretrained LM reads at the decision of step ``column``: everything written before it,
    the question and its answer prefix (the text up to the character the choice is read at)."""
    task = get_task(traj.task) if task is None else task
    columns = np.nonzero(traj.valid[experiment])[0]
    if int(column) not in columns:
        raise ValueError(f"column {column!r} is not a valid step of experiment {experiment} "
                         f"(valid: {columns[0]}..{columns[-1]})" if len(columns) else
                         f"experiment {experiment} has no valid step")
    writer = write_story(traj, experiment, task)
    return writer.text[: writer.positions()["decision"][list(columns).index(int(column))] + 1]


def story_action_strings(task: Task, traj: Trajectory | None = None, experiment: int = 0,
                         state: int = 0) -> list[str]:
    """Strings an LM emits for each choice at state (graph: each node's noun, needs traj)."""
    if traj is None and task.n_actions == 0:
        raise ValueError("the graph task's choices are per-experiment nouns: pass traj")
    return task.story_choices({} if traj is None else traj.experiment_info, experiment, int(state))
