"""The one place that chooses how a model plays or reads a task: transcripts for the organism, whose
tokenizer knows the transcript words, story prompts for pretrained models."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdsae.models import torch_module
from tdsae.play.policy import restricted_logprobs
from tdsae.play.result import PlayResult, played_token_ids
from tdsae.play.stories import play_stories, render_stories, single_token_ids
from tdsae.play.transcripts import play_transcripts, reads_transcripts, render_transcripts
from tdsae.tasks import Task, Trajectory
from tdsae.validation import check_count, check_episode_counts, check_seed


def play_task(model: Any, task: Task, n_experiments: int, n_episodes: int, seed: int,
              n_random_episodes: int = 0, forward: Any = None, residual_layers=None,
              experiments_per_batch: int | None = None) -> PlayResult:
    """Let ``model`` (a tdsae.models.load_model result) play ``task``: transcripts if its tokenizer
    knows the transcript words (the organism), story prompts otherwise (pretrained models).

    forward: what runs the network's forward passes (default: the model's torch module);
    tdsae.interventions passes one that edits latents on the way.
    residual_layers: story play only: residual layers kept at every decision and outcome token from the
    play's own forward passes (PlayResult.residuals), so that the harvest needs no second read.
    experiments_per_batch: story play only: experiments played in lockstep at once (None: all), which bounds
    the KV cache's memory; experiment e plays the same in any batch.
    """
    if not isinstance(task, Task):
        raise ValueError(f"task must be a tdsae.tasks.Task (get_task(name)), got {task!r}")
    n_experiments, n_episodes, n_random_episodes = check_episode_counts(n_experiments, n_episodes, n_random_episodes)
    seed = check_seed(seed)
    if experiments_per_batch is not None:
        check_count(experiments_per_batch, "experiments_per_batch")
    transcripts = reads_transcripts(model.tokenizer, task)
    if residual_layers is not None and transcripts:
        raise ValueError("residual_layers is for story play; this model reads transcripts, whose harvest "
                         "(tdsae.activations.harvest_activations) is a cheap second pass")
    module = torch_module(model) if forward is None else forward
    if transcripts:
        return play_transcripts(module, model.tokenizer, task, n_experiments, n_episodes, seed, n_random_episodes)
    return play_stories(module, model.tokenizer, task, n_experiments, n_episodes, seed, n_random_episodes,
                        residual_layers=residual_layers, experiments_per_batch=experiments_per_batch)


def render_episodes(tokenizer: Any, task: Task, traj: Trajectory) -> PlayResult:
    """Any agent's trajectory rendered as a model would have read it, with its token positions:
    transcripts if the tokenizer knows the transcript words (the organism), story prompts otherwise.
    Lets a model read a known learner's history: choice_logprobs are NaN (nothing was played)."""
    return render_transcripts(task, traj) if reads_transcripts(tokenizer, task) else render_stories(tokenizer, task, traj)


@torch.no_grad()
def read_choices(model: Any, tokenizer: Any, task: Task, traj: Trajectory, buffer_mb: float = 256) -> PlayResult:
    """Any agent's trajectory read by a model, which chooses nothing: render_episodes' result with
    choice_logprobs filled in, the model's log-probabilities of each choice at each of the agent's
    decisions, given everything the agent had seen up to it (transcripts for the organism, stories for a
    pretrained model). On the model's own play they are the ones it played with.

    Args: model: a causal LM (a load_model result or its torch module); tokenizer: its tokenizer;
    buffer_mb: bound on the logits held at once (sequences are read a batch at a time, right-padded,
    and the unembedding runs only at decision tokens).
    """
    if not isinstance(task, Task):
        raise ValueError(f"task must be a tdsae.tasks.Task (get_task(name)), got {task!r}")
    if traj.task != task.name:
        raise ValueError(f"the trajectory is of task {traj.task!r}, not of {task.name!r}: read it with its own task")
    module = torch_module(model)
    rendered = render_episodes(tokenizer, task, traj)
    device = next(module.parameters()).device
    vocab = tokenizer.get_vocab()
    transcripts = reads_transcripts(tokenizer, task)
    n_choices = rendered.choice_logprobs.shape[2]
    columns = {e: np.nonzero(traj.valid[e] & (rendered.decision_pos[e] >= 0))[0] for e in range(traj.n_experiments)}
    for batch in _reading_batches(rendered, columns, len(vocab), buffer_mb):
        ids = played_token_ids(tokenizer, rendered, batch)
        # right-padded: the causal mask keeps every decision token's view to the tokens before it
        kept = np.unique(np.concatenate([rendered.decision_pos[e, columns[e]] for e in batch]))
        logits = module(input_ids=ids.to(device), logits_to_keep=torch.as_tensor(kept, device=device)).logits
        for i, e in enumerate(batch):
            at = np.searchsorted(kept, rendered.decision_pos[e, columns[e]])
            states = traj.state[e, columns[e]]
            if transcripts:
                names = task.transcript_state_tokens(traj.experiment_info, e)
                choices = [[vocab[w] for w in task.transcript_choice_tokens(names, int(s))] for s in states]
            else:
                choices = [single_token_ids(tokenizer, task.story_choices(traj.experiment_info, e, int(s)))
                           for s in states]
            rendered.choice_logprobs[e, columns[e]] = restricted_logprobs(logits[i, at], choices,
                                                                          np.arange(len(at)), n_choices)
    return rendered


def _reading_batches(rendered: PlayResult, columns: dict, vocab_size: int, buffer_mb: float) -> list[list[int]]:
    """Experiments with decisions, in batches of at most 16 whose kept logits (rows x decision positions x
    vocabulary, float32) stay within buffer_mb; a batch holds at least one experiment."""
    batches, current, positions = [], [], set()
    for e, cols in columns.items():
        if not len(cols):
            continue
        grown = positions | set(rendered.decision_pos[e, cols].tolist())
        # 16 rows at most: wider batches of the organism's transcripts ran 2x slower on 2 CPU cores
        if current and (len(current) == 16 or (len(current) + 1) * len(grown) * vocab_size * 4 > buffer_mb * 2**20):
            batches.append(current)
            current, grown = [], set(rendered.decision_pos[e, cols].tolist())
        current.append(e)
        positions = grown
    return batches + ([current] if current else [])
