"""Padded per-step records shared by every task: the Trajectory, one step's Transition, seeding.

Many experiments advance together. Episode ``e`` of every experiment occupies the same block of
``task.max_steps`` columns, so column ``t`` of a ``[n_experiments, n_steps]`` array means the same
(episode, step) in every row; steps after an episode ended early are padding (``valid`` is False).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tdsae.validation import check_int, check_seed

ENV_STREAM = 0  # spawn key of each experiment's task randomness (set-up, transitions, rewards)
POLICY_STREAM = 1  # spawn key of each experiment's action sampling in run_agent


def make_rngs(seed: int, n_experiments: int, stream: int, first: int = 0) -> list[np.random.Generator]:
    """One generator per experiment, so experiment e is the same whatever n_experiments is.

    Args: seed: non-negative int; n_experiments: count; stream: which independent stream; first: the
    number of the first experiment, so that experiments first .. first + n - 1 played apart (a batch of
    a longer run) draw what they would draw in one run of all of them.
    Returns: list of n_experiments generators.
    """
    seed = check_seed(seed)
    first = check_int(first, "first", 0)
    return [np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(first + e, stream)))
            for e in range(n_experiments)]


def check_probability(name: str, value: float) -> float:
    """Return value as float if it lies in [0, 1], else raise ValueError naming it."""
    if not np.isscalar(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass
class Trajectory:
    """Steps of many experiments played in lockstep, padded to a common grid of columns."""

    task: str  # registry name of the task that produced it
    episode: np.ndarray  # [n_experiments, n_steps] int: episode index of each column
    step: np.ndarray  # [n_experiments, n_steps] int: step index within the episode
    state: np.ndarray  # [n_experiments, n_steps] int: state before the step; -1 in padding
    action: np.ndarray  # [n_experiments, n_steps] int: action taken; -1 where none (graph, padding)
    reward: np.ndarray  # [n_experiments, n_steps] float: reward of the step; 0 in padding
    next_state: np.ndarray  # [n_experiments, n_steps] int: state after the step; -1 in padding
    done: np.ndarray  # [n_experiments, n_steps] bool: the episode ends after this step
    valid: np.ndarray  # [n_experiments, n_steps] bool: False on padding after an early end
    info: dict[str, np.ndarray] = field(default_factory=dict)  # task extras, each [n_experiments, n_steps]
    experiment_info: dict[str, np.ndarray] = field(default_factory=dict)  # set-up, each [n_experiments, ...]

    def __post_init__(self):
        shape = self.state.shape
        for name in ("episode", "step", "action", "reward", "next_state", "done", "valid"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected {shape}")
        for key, value in self.info.items():
            if value.shape[:2] != shape:
                raise ValueError(f"info[{key!r}] has shape {value.shape}, expected {shape}")

    @property
    def n_experiments(self) -> int:
        """Number of experiments (rows)."""
        return self.state.shape[0]

    @property
    def n_steps(self) -> int:
        """Number of columns, padding included."""
        return self.state.shape[1]

    @property
    def n_episodes(self) -> int:
        """Number of episodes (column blocks) recorded."""
        return int(self.episode.max()) + 1 if self.episode.size else 0

    def episode_rewards(self) -> np.ndarray:
        """Total reward of each episode. Returns: [n_experiments, n_episodes]."""
        columns = self.episode[0][:, None] == np.arange(self.n_episodes)  # [n_steps, n_episodes]
        return np.where(self.valid, self.reward, 0.0) @ columns

    def select(self, experiments) -> Trajectory:
        """Rows picked (or repeated, for fitting many parameter settings) by index.

        Args: experiments: int indices [k]. Returns: Trajectory with k experiments.
        """
        rows = np.asarray(experiments, dtype=int)
        core = {name: getattr(self, name)[rows] for name in
                ("episode", "step", "state", "action", "reward", "next_state", "done", "valid")}
        return Trajectory(task=self.task, **core,
                          info={k: v[rows] for k, v in self.info.items()},
                          experiment_info={k: v[rows] for k, v in self.experiment_info.items()})

    @classmethod
    def concat(cls, parts: list[Trajectory]) -> Trajectory:
        """The experiments of several trajectories of one task, stacked in order (batches of one run).

        Raises ValueError for no parts, parts of different tasks, or different columns or info keys.
        """
        if not parts:
            raise ValueError("Trajectory.concat needs at least one trajectory")
        first = parts[0]
        for part in parts[1:]:
            if (part.task, part.n_steps, sorted(part.info), sorted(part.experiment_info)) != (
                    first.task, first.n_steps, sorted(first.info), sorted(first.experiment_info)):
                raise ValueError(f"cannot stack a {part.task!r} trajectory of {part.n_steps} columns onto a "
                                 f"{first.task!r} one of {first.n_steps} (or their info keys differ)")
        core = {name: np.concatenate([getattr(p, name) for p in parts]) for name in
                ("episode", "step", "state", "action", "reward", "next_state", "done", "valid")}
        return cls(task=first.task, **core,
                   info={k: np.concatenate([p.info[k] for p in parts]) for k in first.info},
                   experiment_info={k: np.concatenate([p.experiment_info[k] for p in parts])
                                    for k in first.experiment_info})

    def history_before(self, column: int) -> Trajectory:
        """The same experiments with every step from ``column`` on marked invalid: the history a
        player has seen when it faces the decision at ``column``."""
        history = self.select(np.arange(self.n_experiments))
        history.valid[:, column:] = False
        return history

    def to_frame(self) -> pd.DataFrame:
        """Tidy table of the valid steps: experiment, episode, step, ..., then the info columns."""
        rows, cols = np.nonzero(self.valid)
        frame = {"experiment": rows}
        for name in ("episode", "step", "state", "action", "reward", "next_state", "done"):
            frame[name] = getattr(self, name)[rows, cols]
        for key, value in self.info.items():
            frame[key] = value[rows, cols]
        return pd.DataFrame(frame)


@dataclass
class Transition:
    """One step of every experiment, as returned by Environment.step and read by agents."""

    state: np.ndarray  # [n_experiments] int: state before the step; -1 if not valid
    action: np.ndarray  # [n_experiments] int: -1 where no action
    reward: np.ndarray  # [n_experiments] float
    next_state: np.ndarray  # [n_experiments] int: -1 if not valid
    done: np.ndarray  # [n_experiments] bool: the episode ended with this step
    truncated: np.ndarray  # [n_experiments] bool: it ended only because of the step cap
    valid: np.ndarray  # [n_experiments] bool: the experiment was still in its episode

    @classmethod
    def from_column(cls, traj: Trajectory, t: int) -> Transition:
        """Column t of a Trajectory as a Transition (truncated read from info if present)."""
        truncated = traj.info.get("truncated", np.zeros_like(traj.done))[:, t]
        return cls(traj.state[:, t], traj.action[:, t], traj.reward[:, t], traj.next_state[:, t],
                   traj.done[:, t], truncated, traj.valid[:, t])


def fill_value(dtype: np.dtype):
    """Padding for an info array of this dtype: NaN for floats, False for bools, -1 otherwise."""
    if np.issubdtype(dtype, np.floating):
        return np.nan
    return False if dtype == bool else -1

