"""Cached artifacts of play and harvest, so that chapters 3 to 9 share one run of each.

``played_episodes(settings, task)`` is what the preset's model did on a task (a PlayResult), and
``harvested_store(settings, task)`` its residual stream at the decision and outcome tokens (an
ActivationStore). Both are built once through the artifact cache, keyed by every setting that
shapes them, and reloaded by later chapters; the same calls with ``model=`` work for any other
model folder (an untrained organism, a checkpoint).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from tdsae.activations.harvest import harvest_activations, store_played_residuals
from tdsae.activations.store import ActivationStore
from tdsae.agents import get_agent
from tdsae.artifacts import ArtifactStore
from tdsae.models import load_model, model_dims, pick_dtype, torch_module
from tdsae.organism import list_checkpoints
from tdsae.organism.corpus import EVAL_STREAM, seed_for, simulate_transcripts
from tdsae.pipeline.organisms import WALKER_MIX, configs_from_settings, trained_organism
from tdsae.pipeline.weights import model_folder
from tdsae.play.dispatch import play_task, render_episodes
from tdsae.play.transcripts import reads_transcripts
from tdsae.play.result import PlayResult, load_played, load_residuals, save_played, save_residuals
from tdsae.play.stories import join_residuals, play_stories
from tdsae.presets import check_settings
from tdsae.runtime import pick_device, tqdm
from tdsae.tasks import get_task, render_transcript, run_agent, write_story
from tdsae.validation import ORGANISM, check_model_source, check_seed, check_task_names

PLAYED_BATCH = "episode-batch"  # artifact kind of one saved batch of a story play (_play_saved_batches)
STORE_LAYOUT = 3  # bump when the files of an activation store change, so old caches are rebuilt
AGENTS = "agents"  # played_by value: held-out Q-learners with known parameters, not a model


def task_for(settings, name: str):
    """The task object a preset plays (Grid World and graph walks take their lengths from settings)."""
    check_settings(settings)
    check_task_names(name)
    params = {"gridworld": {"max_steps": settings.gridworld_max_steps},
              "graph": {"max_steps": settings.graph_walk_steps}}.get(name, {})
    return get_task(name, **params)


def check_request(settings, task_name: str | None, *models, seed: int | None = None) -> None:
    """What every pipeline entry point checks first, before anything is trained, played or harvested:
    resolved settings, a known task (None: no task), model sources (None: the preset's) and the seed."""
    check_settings(settings)
    if task_name is not None:
        check_task_names(task_name)
    for model in models:
        if model is not None and model != AGENTS:
            check_model_source(model)
    if seed is not None:
        check_seed(seed)


def play_params(settings, task_name: str, model: str | None = None, seed: int | None = None) -> dict:
    """Everything that shapes a play run: the model's identity, the task, the episode settings, and
    where and in which dtype the forward passes run (the same device reads them at harvest)."""
    check_request(settings, task_name, model, seed=seed)
    task = task_for(settings, task_name)
    device = pick_device(settings.device)
    source = (model_source(settings, task_name) if model is None else AGENTS if model == AGENTS
              else model_folder(model))
    batched = {"story_batch": settings.story_batch} if settings.story_batch < settings.n_experiments else {}
    return {"model": source, "task": repr(task), "rendering": rendering_fingerprint(task),
            "n_experiments": settings.n_experiments, "n_episodes": settings.n_episodes,
            "n_random_episodes": settings.n_random_episodes,
            "seed": settings.seed if seed is None else int(seed), "device": device,
            "dtype": str(pick_dtype(device)).removeprefix("torch."),
            **batched}  # one batch plays as before batches existed: the same key


def rendering_fingerprint(task) -> str:
    """A short hash of how ``task`` is written for a model: the story and the transcript of a few random
    episodes. Cached plays are keyed by it, so a play of an older wording is never read back."""
    traj = run_agent(task, get_agent("random"), 2, 3, seed=0)
    digest = hashlib.sha256()
    for experiment in range(traj.n_experiments):
        digest.update(write_story(traj, experiment, task).text.encode())
        digest.update(" ".join(render_transcript(traj, experiment, task)[0]).encode())
    return digest.hexdigest()[:16]


def model_source(settings, task_name: str | None = None) -> str:
    """The folder (organism) or hub id the preset's model loads from, for a task.

    A pretrained model reads every task. The organism reads graph walks through the *walker*: the
    same width, depth, seed and budget trained on walks alone (WALKER_MIX; configs_from_settings), because the all-task
    organism sees too few walks to learn them in context (tdsae.organism.WALKER_MIX says what was
    measured).
    """
    check_request(settings, task_name)
    if settings.model == ORGANISM:
        return str(trained_organism(settings, task_mix=WALKER_MIX if task_name == "graph" else None))
    return model_folder(settings.model)


def played_episodes(settings, task_name: str, model: str | None = None, seed: int | None = None,
                    store=None) -> PlayResult:
    """What a model did on a task with the preset's episode settings, played once and cached.

    A model that reads stories (a pretrained LM) keeps its residual stream while it plays, and the build
    also writes harvested_store's artifact for these arguments from it.

    Args: settings: a resolved Preset; task_name: "twostep", "gridworld" or "graph";
    model: a folder or hub id (default: the preset's model); seed: default the preset's.
    """
    params = play_params(settings, task_name, model, seed)
    store = ArtifactStore() if store is None else store
    batches = [{**params, "first_experiment": first, "experiments": min(settings.story_batch,
                                                                        settings.n_experiments - first)}
               for first in range(0, settings.n_experiments, settings.story_batch)]

    def build(tmp: Path) -> None:
        lm = load_model(params["model"], device=settings.device)
        task = task_for(settings, task_name)
        # A pretrained model's story play keeps its residual stream as it goes, and the harvest of its own
        # stories (harvested_store's artifact) is written from that: each story is read once, not twice.
        stories = not reads_transcripts(lm.tokenizer, task)
        if stories:
            played = _play_saved_batches(settings, lm, task, batches, store)
        else:
            played = play_task(lm, task, settings.n_experiments, settings.n_episodes, params["seed"],
                               settings.n_random_episodes)
        save_played(played, tmp)
        if stories:
            store.load_or_build("activations", harvest_params(settings, task_name, model, None, seed)[0],
                                lambda store_tmp: store_played_residuals(lm, played, store_tmp / "store"))

    played = load_played(store.load_or_build("episodes", params, build))
    if len(batches) > 1:  # the whole run is saved: its pieces are copies
        for batch in batches:
            shutil.rmtree(store.path(PLAYED_BATCH, batch), ignore_errors=True)
    return played


def _play_saved_batches(settings, lm, task, batches: list[dict], store: ArtifactStore) -> PlayResult:
    """Story play of the preset's experiments, each batch of story_batch saved as it finishes (with the
    residual stream it kept), so that a long play stopped part-way resumes at the first batch not saved.
    The batches stacked are the play of all experiments at once (play_stories plays experiment e alike in
    any batch)."""
    module, layers = torch_module(lm), list(range(model_dims(lm)[0] + 1))
    if len(batches) == 1:  # nothing to resume: the play is one piece, saved whole by the caller
        return play_stories(module, lm.tokenizer, task, settings.n_experiments, settings.n_episodes,
                            batches[0]["seed"], settings.n_random_episodes, residual_layers=layers)

    def play_batch(batch: dict):
        def build(tmp: Path) -> None:
            part = play_stories(module, lm.tokenizer, task, batch["experiments"], settings.n_episodes,
                                batch["seed"], settings.n_random_episodes, residual_layers=layers,
                                first_experiment=batch["first_experiment"])
            save_played(part, tmp)
            save_residuals(part.residuals, tmp)
        return store.load_or_build(PLAYED_BATCH, batch, build)

    saved = [play_batch(batch) for batch in tqdm(batches, desc=f"{task.name} play, batches of {settings.story_batch}",
                                                 unit="batch")]
    played = PlayResult.concat([load_played(path) for path in saved])
    played.residuals = join_residuals([load_residuals(path) for path in saved], model_dims(lm)[1])
    return played



def agent_trajectories(settings, task_name: str):
    """Held-out Q-learners (random walks on the graph) of the organism's training distribution,
    each with its own alpha and beta, on the preset's experiments: the ground truth for chapter 7.

    Returns: (Trajectory, alpha [n_experiments], beta [n_experiments]); NaN parameters for walks.
    Drawn from a seed stream that neither the organism's training data nor chapter 2 used.
    """

    check_request(settings, task_name)
    recipe = configs_from_settings(settings)[1]
    sims = simulate_transcripts(task_name, settings.n_experiments, seed_for(settings.seed, EVAL_STREAM, 2), recipe)
    return sims.traj, sims.alpha, sims.beta


def episodes_for(settings, task_name: str, reader, played_by: str, seed: int | None = None, store=None) -> PlayResult:
    """The episodes a model reads: those ``played_by`` played (a model folder or hub id), or the
    held-out agents' (``played_by=AGENTS``) rendered for the reader's tokenizer."""
    check_request(settings, task_name, played_by, seed=seed)
    if played_by == AGENTS:
        traj, _, _ = agent_trajectories(settings, task_name)
        return render_episodes(reader.tokenizer, task_for(settings, task_name), traj)
    return played_episodes(settings, task_name, played_by, seed, store)


def harvested_store(settings, task_name: str, model: str | None = None, played_by: str | None = None,
                    seed: int | None = None, store=None):
    """The residual stream of ``model`` at every layer, at the decision and outcome tokens of the
    episodes ``played_by`` played (default: the model's own; AGENTS: held-out Q-learners),
    harvested once and cached.

    Reading another model's episodes is how the untrained control sees exactly the transcripts
    the trained organism produced. Returns: tdsae.activations.ActivationStore.
    """
    params, reader, player = harvest_params(settings, task_name, model, played_by, seed)
    store = ArtifactStore() if store is None else store
    if player == reader and not store.finished("activations", params):
        played_episodes(settings, task_name, model, seed, store)  # a story play writes this very harvest as it plays

    def build(tmp: Path) -> None:
        lm = load_model(reader, device=settings.device)
        harvest_activations(lm, episodes_for(settings, task_name, lm, player, seed, store), tmp / "store")

    return ActivationStore(store.load_or_build("activations", params, build) / "store")


def harvest_params(settings, task_name: str, model: str | None = None, played_by: str | None = None,
                   seed: int | None = None) -> tuple[dict, str, str]:
    """The cache key of harvested_store's artifact for these arguments, with its reader and player."""
    check_request(settings, task_name, model, played_by, seed=seed)
    reader = str(model if model is not None else model_source(settings, task_name))
    player = reader if played_by is None else str(played_by)
    return {"reader": reader, "episodes": play_params(settings, task_name, player, seed), "layout": STORE_LAYOUT}, \
        reader, player


def untrained_source(settings, store=None, task_name: str | None = None) -> str:
    """The untrained control: the same architecture with random weights, as a loadable folder.

    For the organism, the step-0 checkpoint (the very initialisation training started from) of the
    organism that reads ``task_name`` (model_source; the walker's for "graph"); for a
    pretrained model, a fresh initialisation of its config saved once in the artifact cache next to
    its tokenizer (at 70B that is 140 GB of random weights: run the control on the small preset).
    """
    check_request(settings, task_name)
    if settings.model == ORGANISM:
        return str(list_checkpoints(model_source(settings, task_name))[0])
    source = model_source(settings)  # a hub id that cannot be reached is refused now, not after from_pretrained's retries
    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(source)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed_for(settings.seed, 5).generate_state(1)[0]))
            AutoModelForCausalLM.from_config(config).save_pretrained(tmp)
        AutoTokenizer.from_pretrained(source).save_pretrained(tmp)

    store = ArtifactStore() if store is None else store
    return str(store.load_or_build("untrained", {"model": source, "seed": settings.seed}, build))
