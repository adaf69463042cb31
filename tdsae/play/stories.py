"""Story-mode play: a pretrained LM plays a task from CogBench-style prompts.

Each decision rebuilds every playing experiment's prompt, because its wording ("3 days ago")
changes as episodes pass, so there is no cache to reuse; prompts are batched and left-padded.
The outcome of a step first appears in the experiment's next prompt, where
:func:`story_outcome_positions` finds the word that tells it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdsae.models import left_padding
from tdsae.play.policy import LM_POLICY_STREAM, restricted_logprobs, sample_choices
from tdsae.play.result import PlayResult
from tdsae.tasks import Task, Trajectory
from tdsae.tasks.trajectory import make_rngs


def _single_token_ids(tokenizer: Any, strings: list[str]) -> list[int]:
    ids = []
    for s in strings:
        encoded = tokenizer.encode(s, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"choice {s!r} is {len(encoded)} tokens for this tokenizer; every choice must be one token")
        if encoded[0] == tokenizer.unk_token_id:
            raise ValueError(f"choice {s!r} is the unknown token for this tokenizer; every choice must be its own token")
        ids.append(encoded[0])
    return ids


@torch.no_grad()
def last_token_logits(model: Any, tokenizer: Any, prompts: list[str], batch_size: int = 16) -> torch.Tensor:
    """Next-token logits after each prompt, batched with left padding. Returns [n_prompts, vocab]."""
    device = next(model.parameters()).device
    left_padding(tokenizer)
    rows = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True).to(device)
        positions = (batch["attention_mask"].cumsum(1) - 1).clamp(min=0)
        rows.append(model(**batch, position_ids=positions).logits[:, -1].float())
    return torch.cat(rows)


def play_stories(model: Any, tokenizer: Any, task: Task, n_experiments: int, n_episodes: int, seed: int,
                 n_random_episodes: int = 0, batch_size: int = 16) -> PlayResult:
    """A pretrained LM plays ``task`` from story prompts, all experiments in lockstep.

    Each decision rebuilds every playing experiment's prompt (history, question,
    answer prefix) and reads the last position; every choice string must be one token.
    """
    env = task.reset_experiments(n_experiments, seed)
    rngs = make_rngs(seed, n_experiments, LM_POLICY_STREAM)
    n_choices = max(task.n_actions, task.n_states if task.n_actions == 0 else 0)
    steps = n_episodes * task.max_steps
    logprobs = np.full((n_experiments, steps, n_choices), np.nan)
    decision = np.full((n_experiments, steps), -1)
    random_choice = np.zeros((n_experiments, steps), bool)
    prompts: list[list[str]] = [[] for _ in range(n_experiments)]
    for episode in range(n_episodes):
        env.start_episode()
        while not env.episode_over:
            t, rows = env.episode * task.max_steps + env.t, np.nonzero(env.active)[0]
            history = env.to_trajectory()
            texts = [task.story_prompt(history, e, int(env.state[e])) for e in rows]
            choice_ids = {e: _single_token_ids(tokenizer, task.story_choices(history, e, int(env.state[e]))) for e in rows}
            logits = last_token_logits(model, tokenizer, texts, batch_size)
            by_row = [choice_ids.get(e, []) for e in range(n_experiments)]
            padded = torch.zeros((n_experiments, logits.shape[1]), device=logits.device)
            padded[torch.as_tensor(rows, device=logits.device)] = logits
            logprobs[rows, t] = restricted_logprobs(padded, by_row, rows, n_choices)
            for e, text in zip(rows, texts):
                prompts[e].append(text)
                decision[e, t] = len(tokenizer.encode(text)) - 1
            actions = np.full(n_experiments, -1)
            if task.n_actions:
                random_policy = episode < n_random_episodes
                uniforms = np.array([rngs[e].random() for e in rows])
                actions[rows] = sample_choices(logprobs[rows, t], task.legal_actions(env.state[rows]), uniforms, random_policy)
                random_choice[rows, t] = random_policy
            env.step(actions if task.n_actions else None)
    traj = env.to_trajectory()
    traj.info["random_choice"] = random_choice
    return PlayResult(traj, logprobs, decision, story_outcome_positions(tokenizer, task, traj, prompts), [], prompts)


def story_outcome_positions(tokenizer: Any, task: Task, traj: Trajectory, prompts: list[list[str]]) -> np.ndarray:
    """Token index, in each experiment's next prompt, of the word that reveals a step's outcome.

    The outcome of the k-th step first appears in prompt k + 1 (the last occurrence of
    ``task.story_outcome_text``); the step after the last prompt has none (-1).
    Returns: int [n_experiments, n_steps].
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("story-mode outcome positions need a fast tokenizer (character offsets); "
                         f"{type(tokenizer).__name__} is not one")
    outcome = np.full(traj.state.shape, -1)
    for e in range(traj.n_experiments):
        columns = np.nonzero(traj.valid[e])[0]
        for k, column in enumerate(columns[: len(prompts[e]) - 1]):
            prompt, text = prompts[e][k + 1], task.story_outcome_text(traj, e, int(column))
            start = prompt.rfind(text)
            if start < 0:
                raise ValueError(f"outcome words {text!r} of experiment {e}, step {column} are not in its next prompt")
            last_char = start + len(text.rstrip(",.")) - 1
            offsets = tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
            outcome[e, column] = next(i for i, (a, b) in enumerate(offsets) if a <= last_char < b)
    return outcome


def render_stories(tokenizer: Any, task: Task, traj: Trajectory) -> PlayResult:
    """Any agent's trajectory rendered as the story prompts a pretrained model would have read, with
    the decision and outcome token positions; choice_logprobs are NaN (nothing was played)."""
    n_choices = max(task.n_actions, task.n_states if task.n_actions == 0 else 0)
    logprobs = np.full(traj.state.shape + (n_choices,), np.nan)
    decision = np.full(traj.state.shape, -1)
    prompts: list[list[str]] = []
    for e in range(traj.n_experiments):
        columns = np.nonzero(traj.valid[e])[0]
        prompts.append([task.story_prompt(traj.history_before(c), e, int(traj.state[e, c])) for c in columns])
        decision[e, columns] = [len(tokenizer.encode(text)) - 1 for text in prompts[-1]]
    return PlayResult(traj, logprobs, decision, story_outcome_positions(tokenizer, task, traj, prompts), [], prompts)
