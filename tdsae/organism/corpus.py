"""Training data for the organism: transcripts of agents whose parameters vary per transcript.

Two-Step and Grid World transcripts come from softmax Q-learners, each with its own learning rate
(uniform over ``alpha_range``) and inverse temperature (log-uniform over ``beta_range``), whose
first ``n_random_episodes`` episodes are uniformly random, as in the paper. Graph transcripts are
random walks. Every draw flows from one seed through ``numpy.random.SeedSequence`` spawn keys, so
training data (stream 0) and held-out evaluation agents (stream 1) never share a draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tdsae.agents import QLearner, RandomAgent
from tdsae.organism.tokenizer import encode_transcripts
from tdsae.tasks import TASKS, get_task, render_transcript, run_agent
from tdsae.validation import check_count, check_seed, check_task_names

TRAIN_STREAM = 0  # spawn key of training transcripts
EVAL_STREAM = 1  # spawn key of held-out evaluation transcripts
ORDER_STREAM = 2  # spawn key of the batch order


@dataclass(frozen=True)
class TranscriptRecipe:
    """What the organism reads: which tasks, how much of each, and which agents play them."""

    # Share of training batches per task. Batches are capped in tokens, so these are shares of
    # tokens (and of compute, except that Grid World's long contexts cost more attention).
    # Measured on 2 CPU cores (issue 3 note): with the old payout word (ts:r1 after any alien),
    # Two-Step prediction plateaued near r = 0.80 whatever the learning rate (1e-3, 2e-3), batch
    # size, precision or head count, and mixing in other tasks lowered it (0.75 at a 50% share);
    # naming the alien in the payout word raised it to 0.91. Grid World choice
    # prediction stays near r = 0 at any share we could afford (its agents' policies are nearly
    # uniform except close to the goal, and the network first spends its steps on the grid's
    # geometry). So Two-Step gets 75%; Grid World 20%, enough to read and play grid transcripts;
    # graph walks 5%, enough to know the nouns and the walk format (chapter 9).
    task_mix: dict = field(default_factory=lambda: {"twostep": 0.75, "gridworld": 0.2, "graph": 0.05})
    n_episodes: int = 30  # episodes per transcript (paper: 30)
    n_random_episodes: int = 7  # leading episodes of uniformly random actions (paper: 7)
    # Agents with beta < 3 play the Two-Step Task almost at random (its value differences are
    # ~0.2); an organism that has seen many of them reads its own noisy early choices as such an
    # agent's and stays noisy. With beta >= 3 (and alpha in [0.1, 0.9]) every training agent learns
    # visibly, and the organism's own play beats random (issue 3 note).
    alpha_range: tuple = (0.1, 0.9)  # Q-learning rate, drawn uniformly per transcript
    beta_range: tuple = (3.0, 20.0)  # softmax inverse temperature, drawn log-uniformly per transcript
    gamma: float = 0.99  # discount of every Q-learner (paper: 0.99)
    gridworld_max_steps: int = 12  # move cap of a Grid World episode
    graph_walk_steps: int = 20  # steps of one Graph Learning walk segment
    chunk: int = 256  # transcripts simulated per run_agent call (one length-sorted pool)

    def __post_init__(self):

        unknown = sorted(set(self.task_mix) - set(TASKS))
        if unknown or not self.task_mix or min(self.task_mix.values()) < 0 or sum(self.task_mix.values()) <= 0:
            raise ValueError(f"task_mix must map task names ({', '.join(sorted(TASKS))}) to shares >= 0 "
                             f"with a positive sum, got {self.task_mix!r}")
        if not 0 < self.alpha_range[0] <= self.alpha_range[1] <= 1:
            raise ValueError(f"alpha_range must lie in (0, 1], got {self.alpha_range!r}")
        if not 0 < self.beta_range[0] <= self.beta_range[1]:
            raise ValueError(f"beta_range must be positive and ordered, got {self.beta_range!r}")

    def make_task(self, name: str):
        """The task object with this recipe's episode lengths."""

        params = {"gridworld": {"max_steps": self.gridworld_max_steps},
                  "graph": {"max_steps": self.graph_walk_steps}}.get(name, {})
        return get_task(name, **params)


@dataclass
class TranscriptSet:
    """Simulated experiments of one task and their transcripts."""

    task: object  # the Task that produced them
    traj: object  # Trajectory [n_experiments, n_steps]
    alpha: np.ndarray  # [n_experiments] Q-learning rate (NaN for random walks)
    beta: np.ndarray  # [n_experiments] inverse temperature (NaN for random walks)
    tokens: list  # n_experiments lists of words
    positions: list  # n_experiments dicts {"decision", "outcome"}: [n_valid_steps] word indices


def seed_for(seed: int, *key: int) -> np.random.SeedSequence:
    """The SeedSequence of one independent stream below the master seed."""
    return np.random.SeedSequence(check_seed(seed), spawn_key=tuple(int(k) for k in key))


def make_agent(task, recipe: TranscriptRecipe, n: int, rng: np.random.Generator):
    """A Q-learner with per-experiment (alpha [n], beta [n]); a random walker for the graph task."""

    if task.n_actions == 0:
        return RandomAgent(), np.full(n, np.nan), np.full(n, np.nan)
    alpha = rng.uniform(*recipe.alpha_range, size=n)
    beta = np.exp(rng.uniform(*np.log(recipe.beta_range), size=n))
    return QLearner(alpha=alpha, beta=beta, gamma=recipe.gamma), alpha, beta


def simulate_transcripts(task_name: str, n_experiments: int, seed: np.random.SeedSequence,
                         recipe: TranscriptRecipe) -> TranscriptSet:
    """Play n_experiments fresh agents on a task and render each experiment's transcript."""
    check_task_names(task_name)
    n_experiments = check_count(n_experiments, "n_experiments")
    if not isinstance(seed, np.random.SeedSequence):
        raise ValueError(f"seed must be a numpy SeedSequence (tdsae.organism.corpus.seed_for), got {seed!r}")
    task = recipe.make_task(task_name)
    param_seed, env_seed = seed.spawn(2)
    agent, alpha, beta = make_agent(task, recipe, n_experiments, np.random.default_rng(param_seed))
    traj = run_agent(task, agent, n_experiments, recipe.n_episodes, seed=int(env_seed.generate_state(1)[0]),
                     n_random_episodes=recipe.n_random_episodes if task.n_actions else 0)
    rendered = [render_transcript(traj, e, task) for e in range(n_experiments)]
    return TranscriptSet(task, traj, alpha, beta, [r[0] for r in rendered], [r[1] for r in rendered])


def batch_counts(task_mix: dict, n_batches: int) -> dict[str, int]:
    """Split n_batches over tasks in proportion to their shares (largest remainders)."""
    names = sorted(task_mix)
    shares = np.array([task_mix[n] for n in names], float)
    exact = shares / shares.sum() * n_batches
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: n_batches - counts.sum()]] += 1
    return dict(zip(names, counts.tolist()))


def pack_batches(ids: torch.Tensor, lengths: torch.Tensor, batch_tokens: int) -> list[torch.Tensor]:
    """Sort by length and cut into batches of at most batch_tokens padded words (>= 1 row each).

    Args: ids [n, max_len]; lengths [n]. Returns: list of [rows, batch_max_len] tensors.
    """
    order = torch.argsort(lengths, descending=True, stable=True)
    batches, start = [], 0
    while start < len(order):
        longest = int(lengths[order[start]])
        rows = max(1, batch_tokens // longest)
        pick = order[start:start + rows]
        batches.append(ids[pick, :longest].clone())
        start += rows
    return batches


def build_batches(recipe: TranscriptRecipe, tokenizer, n_batches: int, batch_tokens: int,
                  seed: int) -> list[tuple[str, torch.Tensor]]:
    """Training batches, one task each, in a seeded random order.

    Each task gets its share of the n_batches; a batch is a length-sorted slice of one simulated
    pool, so Grid World's long and short transcripts are not padded to each other.
    Returns: n_batches (task name, ids [rows, len]) pairs, right-padded with tokenizer.pad_token_id.
    """
    n_batches, batch_tokens = check_count(n_batches, "n_batches"), check_count(batch_tokens, "batch_tokens")
    seed = check_seed(seed)

    names = sorted(recipe.task_mix)
    batches = []
    for task_index, (name, count) in enumerate(batch_counts(recipe.task_mix, n_batches).items()):
        made, pool = [], 0
        while len(made) < count:
            sims = simulate_transcripts(name, recipe.chunk, seed_for(seed, TRAIN_STREAM, names.index(name), pool),
                                        recipe)
            ids, lengths = encode_transcripts(tokenizer, sims.tokens)
            made += pack_batches(ids, lengths, batch_tokens)
            pool += 1
        rng = np.random.default_rng(seed_for(seed, TRAIN_STREAM, names.index(name), 10_000))
        keep = rng.permutation(len(made))[:count]  # drop surplus batches without favouring lengths
        batches += [(name, made[i]) for i in keep]
    order = np.random.default_rng(seed_for(seed, ORDER_STREAM)).permutation(len(batches))
    return [batches[i] for i in order]
