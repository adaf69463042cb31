"""Positive and negative prompts for circuit finding on the organism: minimal pairs from real transcripts.

    pairs = minimal_pairs(task, traj, choice_probs, tokenizer, confidence=0.9, seed=0)
    pairs.positive, pairs.negative, pairs.attention_mask   # [n, seq] ids, right-padded, the same mask for both
    pairs.positions, pairs.targets                         # [n] the decision token; the favoured action's word

A **positive** prompt is a held-out agent's transcript cut at a decision where the agent, a Q-learner, was confident
(its choice probability at least ``confidence``): the history predicts the next choice. Its **negative** is the same
transcript with the rewards of its stage-2 outcomes permuted across the episodes before the decision: every word
stays where it was, the choices and planets are untouched, and only which outcome paid changes, so the history no
longer tells which alien pays. The pair differs in reward words only (a test pins this), which is what O'Neill &
Bui's method needs: a head whose output differs between the two is a candidate for the reward-driven computation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from tdsae.agents import QLearner
from tdsae.organism.corpus import seed_for
from tdsae.organism.tokenizer import encode_transcripts
from tdsae.tasks import render_transcript
from tdsae.validation import check_count, check_number, check_seed

PAIRS_STREAM = 13  # spawn key of the prompt draws (which decision, which permutation)


@dataclass
class PromptPairs:
    """Positive prompts and their negative counterparts, aligned token for token, with what each should predict."""

    positive: torch.Tensor  # [n, seq] token ids, right-padded
    negative: torch.Tensor  # [n, seq] the counterparts, the same length row by row
    attention_mask: torch.Tensor  # [n, seq] 1 on real tokens (the same for both)
    positions: torch.Tensor  # [n] the token the prediction is read at (the last real token of each row)
    targets: torch.Tensor  # [n] token id the positive prompt should predict there

    def __len__(self) -> int:
        return len(self.positions)

    def rows(self, index):
        """The pairs at ``index`` (indices or a bool mask), every field sliced alike."""
        index = np.asarray(index)
        index = np.nonzero(index)[0] if index.dtype == bool else index.astype(int)
        picked = torch.as_tensor(index, dtype=torch.long)
        return type(self)(**{field.name: getattr(self, field.name)[picked if isinstance(
            getattr(self, field.name), torch.Tensor) else index] for field in dataclasses.fields(self)})


@dataclass
class MinimalPairs(PromptPairs):
    """The organism's pairs: where in the agents' transcripts each comes from, and how sure the agent was."""

    experiment: np.ndarray  # [n] the agent (row of the trajectory) each prompt comes from
    column: np.ndarray  # [n] the trajectory column of the decision
    stage: np.ndarray  # [n] 1 (spaceship) or 2 (alien)
    confidence: np.ndarray  # [n] the agent's probability of its favoured action, given the true history
    negative_confidence: np.ndarray  # [n] the same agent's probability of that action given the permuted history


def _permuted_rewards(rewards: np.ndarray, rng: np.random.Generator, tries: int = 100) -> np.ndarray | None:
    """A permutation of ``rewards`` that changes at least one of them, or None if none can."""
    if len(np.unique(rewards)) < 2:
        return None
    for _ in range(tries):
        permuted = rng.permutation(rewards)
        if (permuted != rewards).any():
            return permuted
    return None


def minimal_pairs(task, traj, alpha, beta, tokenizer, gamma: float = 0.99, confidence: float = 0.9,
                  per_experiment: int = 1, n_random_episodes: int = 7, seed: int = 0) -> MinimalPairs:
    """Minimal pairs at the confident decisions of Q-learning agents' Two-Step transcripts.

    Args: task: the Two-Step task (tdsae.tasks.get_task("twostep")); traj: the agents' Trajectory; alpha, beta:
    [n_experiments] each agent's learning rate and inverse temperature (gamma shared), from which its choice
    probabilities are replayed; tokenizer: the organism's; confidence: the least probability of the favoured action
    for a decision to count as predictable; per_experiment: decisions drawn per agent (seeded); n_random_episodes:
    the leading random episodes, where no decision counts.
    Returns: MinimalPairs ordered by experiment; an agent with no confident decision, or whose rewards were all
    equal before it, gives none.
    """
    if getattr(task, "name", None) != "twostep":
        raise ValueError(f"minimal pairs permute Two-Step rewards; got task {getattr(task, 'name', task)!r} "
                         "(expected the 'twostep' task)")
    if getattr(traj, "task", None) != "twostep":
        raise ValueError(f"traj must be a Two-Step Trajectory; got one of task {getattr(traj, 'task', traj)!r}")
    alpha, beta = np.asarray(alpha, float), np.asarray(beta, float)
    if alpha.shape != (traj.n_experiments,) or beta.shape != alpha.shape:
        raise ValueError(f"alpha and beta must hold one value per experiment ({traj.n_experiments}); got shapes "
                         f"{alpha.shape} and {beta.shape}")
    probs = QLearner(alpha=alpha, beta=beta, gamma=gamma).evaluate(task, traj).probs
    confidence = check_number(confidence, "confidence", low=0.5, high=1)
    per_experiment, seed = check_count(per_experiment, "per_experiment"), check_seed(seed)
    if not isinstance(n_random_episodes, (int, np.integer)) or n_random_episodes < 0:
        raise ValueError(f"n_random_episodes must be an integer >= 0; got {n_random_episodes!r}")
    positives, negatives, chosen, negative_rewards = [], [], [], []
    for experiment in range(traj.n_experiments):
        rng = np.random.default_rng(seed_for(seed, PAIRS_STREAM, experiment))
        tokens, where = render_transcript(traj, experiment, task)
        columns = np.nonzero(traj.valid[experiment])[0]
        candidates = [i for i, column in enumerate(columns) if traj.episode[experiment, column] >= n_random_episodes
                      and np.nanmax(probs[experiment, column]) >= confidence]
        picked = 0
        for i in rng.permutation(candidates):
            column = columns[i]
            paid = columns[(columns < column) & (traj.state[experiment, columns] > 0)]  # stage-2 outcomes before it
            permuted = _permuted_rewards(traj.reward[experiment, paid], rng)
            if permuted is None:
                continue
            reward = traj.reward.copy()
            reward[experiment, paid] = permuted
            negative_tokens, _ = render_transcript(dataclasses.replace(traj, reward=reward), experiment, task)
            end = int(where["decision"][i]) + 1  # the prompt ends at the decision token
            state, action = int(traj.state[experiment, column]), int(np.nanargmax(probs[experiment, column]))
            positives.append(tokens[:end])
            negatives.append(negative_tokens[:end])
            chosen.append((experiment, column, state, action, task.transcript_action_tokens(state)[action]))
            negative_rewards.append(reward[experiment])
            picked += 1
            if picked == per_experiment:
                break
    if not chosen:
        raise ValueError(f"no decision of the {traj.n_experiments} agents reaches confidence {confidence} after "
                         f"episode {n_random_episodes} with mixed rewards before it; lower confidence")
    positive, lengths = encode_transcripts(tokenizer, positives)
    negative, _ = encode_transcripts(tokenizer, negatives)
    mask = (torch.arange(positive.shape[1])[None] < lengths[:, None]).long()
    experiment, column, state, action, words = (np.array(values) for values in zip(*chosen))
    vocab = tokenizer.get_vocab()
    replay = traj.select(experiment)  # each prompt's agent on its permuted history
    replay.reward = np.stack(negative_rewards)
    replayed = QLearner(alpha=alpha[experiment], beta=beta[experiment], gamma=gamma).evaluate(task, replay).probs
    negative_confidence = replayed[np.arange(len(chosen)), column, action]
    return MinimalPairs(positive, negative, mask, lengths - 1, torch.tensor([vocab[w] for w in words]),
                        experiment, column, np.where(state > 0, 2, 1),
                        probs[experiment, column, action], negative_confidence)



def stray_differences(pairs: PromptPairs, tokenizer) -> int:
    """How many (prompt, position) places the positive and negative prompts differ anywhere but in the reward of a
    payout word (ts:D1 against ts:D0: the same alien, another reward). 0 for correctly built pairs."""
    words = {index: word for word, index in tokenizer.get_vocab().items()}
    stray = 0
    for row, column in zip(*np.nonzero((pairs.positive != pairs.negative).numpy())):
        a, b = words[int(pairs.positive[row, column])], words[int(pairs.negative[row, column])]
        if not (a[:-1] == b[:-1] and {a[-1], b[-1]} == {"0", "1"} and bool(pairs.attention_mask[row, column])):
            stray += 1
    return stray
