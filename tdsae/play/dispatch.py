"""The one place that chooses how a model plays or reads a task: transcripts for the organism, whose
tokenizer knows the transcript words, story prompts for pretrained models."""

from __future__ import annotations

from typing import Any

from tdsae.models import torch_module
from tdsae.play.result import PlayResult
from tdsae.play.stories import play_stories, render_stories
from tdsae.play.transcripts import play_transcripts, reads_transcripts, render_transcripts
from tdsae.tasks import Task, Trajectory
from tdsae.validation import check_episode_counts, check_seed


def play_task(model: Any, task: Task, n_experiments: int, n_episodes: int, seed: int,
              n_random_episodes: int = 0, forward: Any = None, residual_layers=None) -> PlayResult:
    """Let ``model`` (a tdsae.models.load_model result) play ``task``: transcripts if its tokenizer
    knows the transcript words (the organism), story prompts otherwise (pretrained models).

    forward: what runs the network's forward passes (default: the model's torch module);
    tdsae.interventions passes one that edits latents on the way.
    residual_layers: story play only: residual layers kept at every decision and outcome token from the
    play's own forward passes (PlayResult.residuals), so that the harvest needs no second read.
    """
    if not isinstance(task, Task):
        raise ValueError(f"task must be a tdsae.tasks.Task (get_task(name)), got {task!r}")
    n_experiments, n_episodes, n_random_episodes = check_episode_counts(n_experiments, n_episodes, n_random_episodes)
    seed = check_seed(seed)
    transcripts = reads_transcripts(model.tokenizer, task)
    if residual_layers is not None and transcripts:
        raise ValueError("residual_layers is for story play; this model reads transcripts, whose harvest "
                         "(tdsae.activations.harvest_activations) is a cheap second pass")
    if transcripts:
        return play_transcripts(torch_module(model) if forward is None else forward, model.tokenizer, task,
                                n_experiments, n_episodes, seed, n_random_episodes)
    return play_stories(torch_module(model) if forward is None else forward, model.tokenizer, task, n_experiments,
                        n_episodes, seed, n_random_episodes, residual_layers=residual_layers)


def render_episodes(tokenizer: Any, task: Task, traj: Trajectory) -> PlayResult:
    """Any agent's trajectory rendered as a model would have read it, with its token positions:
    transcripts if the tokenizer knows the transcript words (the organism), story prompts otherwise.
    Lets a model read a known learner's history: choice_logprobs are NaN (nothing was played)."""
    return render_transcripts(task, traj) if reads_transcripts(tokenizer, task) else render_stories(tokenizer, task, traj)
