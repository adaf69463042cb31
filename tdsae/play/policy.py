"""How a language model's choice is read and sampled, the same in transcript and story play.

At each decision the model's next-token distribution is restricted to the legal choice tokens and
renormalised; the choice is sampled with the experiment's own random stream (uniformly in the first
``n_random_episodes`` episodes, as in the paper, though the model's probabilities are still recorded).
"""

from __future__ import annotations

import numpy as np
import torch

LM_POLICY_STREAM = 2  # spawn key of each experiment's sampling stream (tasks use 0 and 1)


def restricted_logprobs(logits: torch.Tensor, choice_ids: list[list[int]], rows: np.ndarray, width: int) -> np.ndarray:
    """Log-softmax over each row's choice tokens only. Returns [len(rows), width], NaN past a row's choices."""
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        picked = logits[row, choice_ids[row]]
        out[i, : len(choice_ids[row])] = torch.log_softmax(picked, dim=0).double().cpu().numpy()
    return out


def sample_choices(logprobs: np.ndarray, legal: np.ndarray, uniforms: np.ndarray, random_policy: bool) -> np.ndarray:
    """Inverse-CDF sampling per row from the model (or uniform over legal choices in random episodes)."""
    probs = np.where(legal, 1.0, 0.0) if random_policy else np.where(legal, np.exp(np.nan_to_num(logprobs, nan=-np.inf)), 0.0)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return np.minimum((probs.cumsum(axis=1) < uniforms[:, None]).sum(axis=1), probs.shape[1] - 1)


def choose_actions(task, state: np.ndarray, step_logprobs: np.ndarray, rows: np.ndarray, rngs: list,
                   random_policy: bool) -> np.ndarray:
    """The action each playing row takes at one step (-1 elsewhere, and everywhere in a task whose choice is a
    prediction): sampled from its log-probs [len(rows), n_choices], or uniformly over legal actions in a
    random episode, with one draw from each playing row's own generator."""
    actions = np.full(len(rngs), -1)
    if task.n_actions:
        uniforms = np.array([rngs[e].random() for e in rows])
        actions[rows] = sample_choices(step_logprobs, task.legal_actions(state[rows]), uniforms, random_policy)
    return actions

