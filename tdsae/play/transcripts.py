"""Transcript play: the model organism plays a task, every experiment advancing in lockstep as one batch.

The organism reads compact transcripts, fed incrementally through a key-value cache
(:class:`CachedBatch`), so the history is never recomputed. Pretrained models read story prompts
instead (tdsae.play.stories); tdsae.play.dispatch chooses between the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdsae.play.policy import LM_POLICY_STREAM, choose_actions, restricted_logprobs
from tdsae.play.result import PlayResult
from tdsae.tasks import Task, Trajectory, TranscriptBuilder, render_transcript
from tdsae.tasks.trajectory import make_rngs


class CachedBatch:
    """Growing token sequences, one per row, fed through a causal LM chunk by chunk.

    Rows may receive chunks of different lengths (or none): chunks are right-padded,
    pads are masked out of attention and skipped by the position ids, so each row
    sees exactly its own tokens. With ``use_cache=False`` every feed recomputes the
    whole history (the naive baseline the cache is measured against).
    """

    def __init__(self, model: Any, n_rows: int, pad_id: int, device: str, use_cache: bool = True,
                 max_len: int | None = None) -> None:
        self.model, self.pad_id, self.device, self.use_cache = model, pad_id, device, use_cache
        self.cache: Any = None
        self.max_len = max_len  # capacity of the preallocated cache; None grows it as needed
        if use_cache and max_len:
            from transformers import StaticCache

            # Preallocated: a growing cache would copy itself at every step (quadratic in length).
            self.cache = StaticCache(config=model.config, max_cache_len=max_len)
        self.ids = torch.zeros((n_rows, 0), dtype=torch.long, device=device)  # [rows, fed] (naive mode)
        self.mask = torch.zeros((n_rows, 0), dtype=torch.long, device=device)  # [rows, fed] 1 = real token
        self.count = torch.zeros(n_rows, dtype=torch.long, device=device)  # real tokens per row so far

    @torch.no_grad()
    def feed(self, chunks: list[list[int]]) -> torch.Tensor:
        """Append each row's chunk; return logits after each row's last real token [rows, vocab].

        Rows with an empty chunk get the logits of nothing new: their values are undefined.
        """
        width = max(len(c) for c in chunks)
        lengths = torch.tensor([len(c) for c in chunks], device=self.device)
        ids = torch.full((len(chunks), width), self.pad_id, dtype=torch.long, device=self.device)
        for row, chunk in enumerate(chunks):
            ids[row, : len(chunk)] = torch.tensor(chunk, dtype=torch.long)
        new_mask = (torch.arange(width, device=self.device)[None] < lengths[:, None]).long()
        positions = (self.count[:, None] + new_mask.cumsum(1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, new_mask], dim=1)
        if self.use_cache:
            fed = self.mask.shape[1] - width
            if self.max_len is not None and fed + width > self.max_len:
                raise RuntimeError(f"transcripts outgrew the preallocated cache of {self.max_len} tokens")
            last = (lengths - 1).clamp(min=0)
            # the unembedding runs only where a row's last token is (a 49k-word vocabulary makes it costly)
            keep = torch.unique(last)
            out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                             past_key_values=self.cache, use_cache=True,
                             cache_position=torch.arange(fed, fed + width, device=self.device), logits_to_keep=keep)
            self.cache = out.past_key_values
        else:
            self.ids = torch.cat([self.ids, ids], dim=1)
            all_positions = (self.mask.cumsum(1) - 1).clamp(min=0)
            last = self.ids.shape[1] - width + (lengths - 1).clamp(min=0)
            keep = torch.unique(last)
            out = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=all_positions, use_cache=False,
                             logits_to_keep=keep)
        self.count += lengths
        return out.logits[torch.arange(len(chunks), device=self.device), torch.searchsorted(keep, last)].float()


def _transcript_bound(task: Task, experiment_info: dict, n_episodes: int) -> int:
    """Most tokens a lockstep batch can feed: per step, the widest chunk any row can append."""
    names = task.transcript_state_tokens(experiment_info, 0)
    opening = len(task.transcript_episode_tokens(names, 0, 0))
    action = 1 if task.n_actions else 0
    outcome = max(len(task.transcript_outcome_tokens(names, 0, 0, reward, 0, done))
                  for reward in (0.0, 1.0) for done in (False, True))
    return 1 + n_episodes * (opening + task.max_steps * (action + outcome))


def play_transcripts(model: Any, tokenizer: Any, task: Task, n_experiments: int, n_episodes: int, seed: int,
                     n_random_episodes: int = 0, use_cache: bool = True) -> PlayResult:
    """The model organism plays ``task`` through compact transcripts, all experiments in lockstep.

    Args:
        model: a Hugging Face causal LM (e.g. ``tdsae.models.torch_module(load_model(path))``).
        tokenizer: its tokenizer; every transcript token must be one id.
        use_cache: False recomputes the whole history at each decision (for benchmarking only).
    """
    device = next(model.parameters()).device
    env = task.reset_experiments(n_experiments, seed)
    rngs = make_rngs(seed, n_experiments, LM_POLICY_STREAM)
    builders = [TranscriptBuilder(task, env.experiment_info, e) for e in range(n_experiments)]
    vocab = tokenizer.get_vocab()
    max_len = _transcript_bound(task, env.experiment_info, n_episodes)
    batch = CachedBatch(model, n_experiments, tokenizer.pad_token_id, str(device), use_cache, max_len)
    fed = [0] * n_experiments
    n_choices = max(task.n_actions, task.n_states if task.n_actions == 0 else 0)
    steps = n_episodes * task.max_steps
    logprobs = np.full((n_experiments, steps, n_choices), np.nan)
    decision = np.full((n_experiments, steps), -1)
    outcome = np.full((n_experiments, steps), -1)
    random_choice = np.zeros((n_experiments, steps), bool)
    for episode in range(n_episodes):
        state = env.start_episode()
        for e in range(n_experiments):
            builders[e].start_episode(state[e])
        while not env.episode_over:
            t, rows = env.episode * task.max_steps + env.t, np.nonzero(env.active)[0]  # column, playing rows
            choice_ids = [[vocab[tok] for tok in builders[e].choice_tokens(env.state[e])] for e in range(n_experiments)]
            chunks = [[vocab[tok] for tok in builders[e].tokens[fed[e]:]] if env.active[e] else []
                      for e in range(n_experiments)]
            logits = batch.feed(chunks)
            fed = [len(b.tokens) if env.active[e] else fed[e] for e, b in enumerate(builders)]
            logprobs[rows, t] = restricted_logprobs(logits, choice_ids, rows, n_choices)
            actions = choose_actions(task, env.state, logprobs[rows, t], rows, rngs, episode < n_random_episodes)
            random_choice[rows, t] = bool(task.n_actions) and episode < n_random_episodes
            states_before = env.state.copy()
            for e in rows:
                builders[e].add_action(states_before[e], actions[e])
            transition = env.step(actions if task.n_actions else None)
            for e in rows:
                builders[e].add_outcome(states_before[e], actions[e], transition.reward[e],
                                        transition.next_state[e], transition.done[e])
    traj = env.to_trajectory()
    traj.info["random_choice"] = random_choice
    for e, builder in enumerate(builders):
        columns, positions = np.nonzero(traj.valid[e])[0], builder.positions()
        decision[e, columns], outcome[e, columns] = positions["decision"], positions["outcome"]
    return PlayResult(traj, logprobs, decision, outcome, [b.tokens for b in builders], [])


def reads_transcripts(tokenizer: Any, task: Task) -> bool:
    """True when every transcript token of ``task`` is one known word for ``tokenizer`` (the organism)."""
    vocab = tokenizer.get_vocab()
    return all(token in vocab for token in task.transcript_tokens())


def render_transcripts(task: Task, traj: Trajectory) -> PlayResult:
    """Any agent's trajectory rendered as the organism would have read it, with its token positions;
    choice_logprobs are NaN (nothing was played)."""
    n_choices = max(task.n_actions, task.n_states if task.n_actions == 0 else 0)
    logprobs = np.full(traj.state.shape + (n_choices,), np.nan)
    decision, outcome, tokens = np.full(traj.state.shape, -1), np.full(traj.state.shape, -1), []
    for e in range(traj.n_experiments):
        words, positions = render_transcript(traj, e, task)
        columns = np.nonzero(traj.valid[e])[0]
        decision[e, columns], outcome[e, columns] = positions["decision"], positions["outcome"]
        tokens.append(words)
    return PlayResult(traj, logprobs, decision, outcome, tokens, [])
