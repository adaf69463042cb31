"""The lockstep Environment, the Task interface every task implements, and run_agent.

An LM player drives the same Environment that ``run_agent`` drives::

    env = task.reset_experiments(n_experiments=100, seed=0)
    for _ in range(30):
        env.start_episode()
        while not env.episode_over:
            outcome = env.step(choose(env.state, env.active))  # actions [n_experiments]
    traj = env.to_trajectory()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np

from tdsae.tasks.trajectory import ENV_STREAM, POLICY_STREAM, Trajectory, Transition, fill_value, make_rngs
from tdsae.validation import check_count, check_episode_counts, check_seed


class Environment:
    """Mutable state of n experiments of one task, advanced in lockstep and recorded as it goes."""

    def __init__(self, task: Task, n_experiments: int, seed: int, first: int = 0):
        self.task = task
        self.n_experiments = check_count(n_experiments, "n_experiments")
        self._rngs = make_rngs(seed, self.n_experiments, ENV_STREAM, first)  # experiments first, first + 1, ...
        self.params = task.draw_experiments(self._rngs)  # evolving per-experiment parameters
        self.experiment_info = {k: v.copy() for k, v in self.params.items()}  # set-up as drawn
        self.episode = -1  # index of the current episode; -1 before the first
        self.t = 0  # steps taken in the current episode
        self.state = np.full(self.n_experiments, -1)  # [n_experiments] current states
        self.active = np.zeros(self.n_experiments, bool)  # [n_experiments] still in the episode
        self._blocks: list[dict[str, np.ndarray]] = []  # finished episodes, [n, max_steps] each
        self._block: dict[str, np.ndarray] | None = None
        self._noise = None  # [n, max_steps, noise_per_step] uniforms of the current episode

    @property
    def episode_over(self) -> bool:
        """True when every experiment has ended the current episode (or none has started)."""
        return self.episode < 0 or self.t >= self.task.max_steps or not self.active.any()

    def start_episode(self) -> np.ndarray:
        """Begin the next episode for every experiment. Returns: start states [n_experiments]."""
        if not self.episode_over:
            raise ValueError(f"episode {self.episode} is still running at step {self.t}; "
                             "step until episode_over before starting another")
        if self._block is not None:
            self._blocks.append(self._block)
            self.params = self.task.advance_episode(self.params, self._rngs)
        self.episode += 1
        k, n_steps = self.task.noise_per_step, self.task.max_steps
        self._noise = np.stack([rng.random((n_steps, k)) for rng in self._rngs])
        self.state = self.task.start_states(self.params, self.episode, self.state)
        self.active = np.ones(self.n_experiments, bool)
        self.t = 0
        self._block = self._empty_block()
        return self.state.copy()

    def step(self, actions=None) -> Transition:
        """Apply one action per experiment; ignored where an experiment's episode has ended.

        Args: actions: int [n_experiments] (None or -1 for the graph task, which has no actions).
        Returns: Transition of [n_experiments] arrays; rows of ended experiments are not valid.
        """
        if self.episode_over:
            raise ValueError("no episode is running; call start_episode() first")
        n, task = self.n_experiments, self.task
        actions = np.full(n, -1) if actions is None else np.asarray(actions, dtype=int)
        if actions.shape != (n,):
            raise ValueError(f"actions must have shape ({n},), got {actions.shape}")
        active = self.active.copy()
        if task.n_actions:
            act = actions[active]
            if np.any((act < 0) | (act >= task.n_actions)) or not np.all(
                    task.legal_actions(self.state[active])[np.arange(act.size), act.clip(0)]):
                raise ValueError(f"illegal actions {act.tolist()} in states "
                                 f"{self.state[active].tolist()}; legal: task.legal_actions(state)")
            actions = np.where(active, actions, 0)
        elif np.any(actions != -1):
            raise ValueError(f"task {task.name!r} has no actions; pass None (or -1), got {actions.tolist()}")
        next_state, reward, terminal, info = task.transition(
            self.params, self.state, actions, self._noise[:, self.t])
        done = active & (terminal | (self.t == task.max_steps - 1))
        out = Transition(
            state=np.where(active, self.state, -1), action=np.where(active, actions, -1),
            reward=np.where(active, reward, 0.0).astype(float),
            next_state=np.where(active, next_state, -1), done=done,
            truncated=done & ~terminal, valid=active)
        self._record(out, info)
        self.state = np.where(active, next_state, self.state)
        self.active = active & ~done
        self.t += 1
        return out

    def to_trajectory(self) -> Trajectory:
        """Everything recorded so far (the running episode padded to max_steps) as a Trajectory."""
        blocks = self._blocks + ([self._block] if self._block is not None else [])
        if not blocks:
            blocks = [self._empty_block(n_steps=0)]
        joined = {k: np.concatenate([b[k] for b in blocks], axis=1) for k in blocks[-1]}
        core = ("episode", "step", "state", "action", "reward", "next_state", "done", "valid")
        return Trajectory(task=self.task.name, **{k: joined[k] for k in core},
                          info={k: v for k, v in joined.items() if k not in core},
                          experiment_info={k: v.copy() for k, v in self.experiment_info.items()})

    def _empty_block(self, n_steps: int | None = None) -> dict[str, np.ndarray]:
        n, n_steps = self.n_experiments, self.task.max_steps if n_steps is None else n_steps
        shape = (n, n_steps)
        return {"episode": np.full(shape, self.episode), "step": np.tile(np.arange(n_steps), (n, 1)),
                "state": np.full(shape, -1), "action": np.full(shape, -1),
                "reward": np.zeros(shape), "next_state": np.full(shape, -1),
                "done": np.zeros(shape, bool), "valid": np.zeros(shape, bool),
                "truncated": np.zeros(shape, bool)}

    def _record(self, out: Transition, info: dict[str, np.ndarray]) -> None:
        block, t = self._block, self.t
        for name in ("state", "action", "reward", "next_state", "done", "valid", "truncated"):
            block[name][:, t] = getattr(out, name)
        for key, value in info.items():
            value = np.asarray(value)
            if key not in block:
                block[key] = np.full((self.n_experiments, self.task.max_steps),
                                     fill_value(value.dtype), dtype=value.dtype)
            block[key][:, t] = np.where(out.valid, value, fill_value(value.dtype))


class Task(ABC):
    """A task: sizes, names, seeded dynamics (hooks used by Environment) and both renderers."""

    name: str  # registry name
    n_states: int  # number of states (nodes for the graph task)
    n_actions: int  # number of actions; 0 for the graph task (random walks)
    max_steps: int  # columns per episode
    action_names: tuple[str, ...]  # one per action
    state_names: tuple[str, ...]  # one per state (the graph's nouns differ per experiment)
    noise_per_step: int = 0  # uniforms drawn per experiment per step for the dynamics
    continuing: bool = False  # episodes are segments of one unbroken stream (graph walks)

    def legal_actions(self, state) -> np.ndarray:
        """Legal actions in each state. Args: state [...]. Returns: bool [..., n_actions]."""
        return np.ones(np.shape(state) + (self.n_actions,), bool)

    def reset_experiments(self, n_experiments: int, seed: int, first: int = 0) -> Environment:
        """Fresh experiments with set-ups drawn from seed; ``first`` numbers the first of them, so a batch
        of a longer run is that run's experiments first .. first + n - 1. Returns: Environment (no episode yet)."""
        return Environment(self, n_experiments, seed, first)

    # dynamics hooks, called by Environment
    @abstractmethod
    def draw_experiments(self, rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
        """Per-experiment set-up, each value [n_experiments, ...]."""

    def advance_episode(self, params: dict, rngs: list[np.random.Generator]) -> dict:
        """Parameters for the next episode (e.g. drifting reward probabilities)."""
        return params

    @abstractmethod
    def start_states(self, params: dict, episode: int, state: np.ndarray) -> np.ndarray:
        """Start states [n_experiments] of an episode, given the states where the last one ended."""

    @abstractmethod
    def transition(self, params: dict, state: np.ndarray, action: np.ndarray, noise: np.ndarray):
        """Dynamics. Args: [n] state, action, noise [n, noise_per_step].

        Returns: next_state [n], reward [n], terminal [n] bool, info dict of [n] arrays.
        """

    # story renderer (pretrained LLMs); pieces that tdsae.tasks.story.StoryWriter appends in order, so a
    # story only ever grows and one KV cache per experiment serves the whole play
    @abstractmethod
    def story_intro(self, experiment_info: dict, experiment: int) -> str:
        """The cover story the experiment's text opens with."""

    @abstractmethod
    def story_opening(self, experiment_info: dict, experiment: int, state: int, episode: int) -> str:
        """What opens an episode that starts in state ("" for none)."""

    @abstractmethod
    def story_question(self, experiment_info: dict, experiment: int, state: int) -> str:
        """The question and answer prefix of the decision at state; the choice is read after its last
        character ("" to read it after the text so far)."""

    @abstractmethod
    def story_choices(self, experiment_info: dict, experiment: int, state: int) -> list[str]:
        """The strings (each starting with a space) an LM emits for each choice at state."""

    @abstractmethod
    def story_outcome(self, experiment_info: dict, experiment: int, state: int, action: int, reward: float,
                      next_state: int, done: bool) -> tuple[str, str]:
        """(text appended after the answer, the words in it that reveal the outcome): the outcome is
        read at the token of the last letter of those words."""

    # transcript renderer (the model organism); pieces used by TranscriptBuilder
    @abstractmethod
    def transcript_state_tokens(self, experiment_info: dict, experiment: int) -> list[str]:
        """The token of each state [n_states] in this experiment."""

    @abstractmethod
    def transcript_action_tokens(self, state: int) -> list[str]:
        """The token of each action [n_actions] at state."""

    @abstractmethod
    def transcript_episode_tokens(self, state_tokens: list[str], state: int, episode: int) -> list[str]:
        """Tokens that open an episode starting in state."""

    @abstractmethod
    def transcript_outcome_tokens(self, state_tokens: list[str], state: int, action: int,
                                  reward: float, next_state: int, done: bool) -> list[str]:
        """Tokens after an action: the reward and/or the next state."""

    @abstractmethod
    def transcript_tokens(self) -> set[str]:
        """Every token this task can emit."""

    def transcript_choice_tokens(self, state_tokens: list[str], state: int) -> list[str]:
        """Tokens whose next-token probabilities are read at a decision in state."""
        return self.transcript_action_tokens(state)



class AgentProtocol(Protocol):
    """What run_agent needs from an agent (tdsae.agents implements it)."""

    def reset(self, n_experiments: int, task: Task) -> None: ...

    def choice_probs(self, state: np.ndarray) -> np.ndarray: ...

    def update(self, transition: Transition) -> np.ndarray: ...


def sample_choices(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling. Args: probs [n, k], uniforms [n]. Returns: int [n]."""
    cdf = np.cumsum(probs, axis=1)
    return np.minimum((uniforms[:, None] * cdf[:, -1:] >= cdf).sum(axis=1), probs.shape[1] - 1)


def run_agent(task: Task, agent: AgentProtocol, n_experiments: int, n_episodes: int, seed: int,
              n_random_episodes: int = 0) -> Trajectory:
    """Let an agent play (and learn); the first n_random_episodes use uniform random legal actions.

    For the graph task the walk is random whatever the agent; the agent still learns from it.
    Returns: Trajectory [n_experiments, n_episodes * task.max_steps], info["random_choice"] marking
    steps whose action came from the random policy.
    """
    n_experiments, n_episodes, n_random_episodes = check_episode_counts(n_experiments, n_episodes, n_random_episodes)
    seed = check_seed(seed)
    env = task.reset_experiments(n_experiments, seed)
    policy_rngs = make_rngs(seed, env.n_experiments, POLICY_STREAM)
    agent.reset(env.n_experiments, task)
    for episode in range(n_episodes):
        state = env.start_episode()
        uniforms = np.stack([rng.random(task.max_steps) for rng in policy_rngs])  # [n, max_steps]
        while not env.episode_over:
            actions = None
            if task.n_actions:
                legal = task.legal_actions(state)
                probs = legal / legal.sum(1, keepdims=True) if episode < n_random_episodes \
                    else agent.choice_probs(state)
                actions = sample_choices(probs, uniforms[:, env.t])
            agent.update(env.step(actions))
            state = env.state
    traj = env.to_trajectory()
    traj.info["random_choice"] = traj.valid & (traj.episode < n_random_episodes) & (traj.action >= 0)
    return traj
