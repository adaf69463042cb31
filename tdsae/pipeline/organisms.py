"""A preset's organisms: the configs its settings describe, trained once and kept in the artifact cache.

    folder = trained_organism(settings)                   # the all-task organism (chapters 2-8)
    walker = trained_organism(settings, task_mix=WALKER_MIX)   # graph walks only (chapter 9)
    model = load_preset_model(settings)                   # the preset's model, organism or hub id
    for member in population(settings): ...               # one resolved Preset per organism of the population

One trained network is one sample: the same recipe from another seed can show another finding. So
``tiny`` trains ``n_organisms`` organisms that differ only in their training seed (data, batch order
and initial weights), and the chapters that make claims about organisms state them across all of them.
Member ``i`` is ``settings`` with ``organism=i``: everything else (held-out agents, play seeds,
selection halves, SAE seeds) stays the same, so members differ only in the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tdsae.artifacts import ArtifactError, ArtifactStore
from tdsae.models import load_model
from tdsae.organism import OrganismConfig, TrainingConfig, TranscriptRecipe, train_organism
from tdsae.organism.corpus import seed_for
from tdsae.pipeline.weights import model_folder
from tdsae.presets import check_settings
from tdsae.runtime import matmul_precision, pick_device, usable_cores
from tdsae.tasks import transcript_vocabulary
from tdsae.validation import ORGANISM, check_count

# What the walker reads: graph walks only. Mixed into the all-task organism's training, walks were
# never learned in context within the tiny budget (measured for issue 5: 750 steps of walks alone
# lift the next-node log-probability 0.92 nats above uniform guessing over the 15 nodes; 45% walks in
# 1,050 mixed steps, 0.04 nats, while Two-Step prediction fell from r 0.91 to 0.89).
WALKER_MIX = {"graph": 1.0}
# How the walker is trained, relative to the organism: half the steps, each of WALKER_BATCH_TOKENS. Walks are
# learned in context only from enough tokens, in large batches (measured in fp32, seed 0, held-out walk loss):
# 750 steps of 4,096 tokens reach 2.22 nats, 1,000 steps of 2,048 only 3.31, and 400 steps of 4,096 on top of
# the trained all-task organism 3.47. The all-task organism needs neither: 1,500 steps of 1,024 tokens end at
# the held-out loss of 750 steps of 4,096 (Two-Step 0.464 against 0.462 nats, Grid World 1.34 against 1.40)
# in 45% of the time, with the same Two-Step choice correlation (0.907 against 0.910).
WALKER_BATCH_TOKENS = 4096
WALKER_STEP_FRACTION = 0.5
# The walker's shape beside the organism's: the same width and depth, a SwiGLU half as wide (2 x d_model) and two
# attention heads of 64 instead of four of 32. Measured in fp32 on 2 AVX2-capped cores, one thread per walker, two
# trained side by side (held-out walk loss, nats). Seed 0: four heads and 4 x d_model 2.203 in 357 s; 2 x d_model
# 2.228 in 287 s; 2 x d_model with two heads 2.152 in 250 s; 1 x d_model 2.526 in 231 s. Organism 1's seed: four
# heads and 4 x d_model 2.335 in 343 s; 2 x d_model with two heads 2.197 in 257 s. The walkers were about 40% of
# the book's computing, and the CPU's attention kernel runs wide heads faster than narrow ones.
WALKER_MLP_RATIO = 2
WALKER_HEADS = 2
POPULATION_STREAM = 6  # spawn key of the training seeds of organisms 1, 2, ... of a population


def organism_seed(settings) -> int:
    """The training seed of the organism ``settings.organism`` of the population of ``settings.seed``.

    Organism 0 trains from the master seed itself, so a population of one is the organism that seed
    always gave; organism i > 0 from an independent stream below it (seeds 0 and 1 share no organism).
    """
    check_settings(settings)
    if settings.organism == 0:
        return int(settings.seed)
    return int(seed_for(settings.seed, POPULATION_STREAM, settings.organism).generate_state(1)[0])


def population(settings) -> list:
    """One resolved Preset per organism of the population: ``settings`` with organism = 0 .. n_organisms - 1.

    At a pretrained preset (small, full) the population is the one pretrained model: ``[settings]``.
    """
    check_settings(settings)
    if settings.model != ORGANISM:
        return [settings]
    return [dataclasses.replace(settings, organism=i) for i in range(settings.n_organisms)]


def organism_settings(settings):
    """The settings of the preset's organism population, whatever model the preset studies: chapters that need
    what only an organism has (training checkpoints, a known generating agent) study it at every preset, with
    the preset's n_organisms (1 at the pretrained presets) and every other knob unchanged."""
    check_settings(settings)
    return settings if settings.model == ORGANISM else dataclasses.replace(settings, model=ORGANISM, organism=0)


def pretrained_settings(settings):
    """The settings chapter 10 runs with: the preset's pretrained ``lm_model`` and ``lm_experiments`` in place of
    its model and experiment count (edits replay at most all of them), a population of one; every other knob
    (episodes, seed, SAEs) unchanged."""
    check_settings(settings)
    return dataclasses.replace(settings, model=settings.lm_model, n_experiments=settings.lm_experiments,
                               edit_experiments=min(settings.edit_experiments, settings.lm_experiments),
                               n_organisms=1, organism=0)


def configs_from_settings(settings, task_mix: dict | None = None) -> tuple[OrganismConfig, TranscriptRecipe,
                                                                           TrainingConfig]:
    """The organism's three configs from a resolved Preset (tiny: organism_* knobs, episodes, and the
    training seed of organism ``settings.organism``: organism_seed).

    task_mix: the recipe's share of batches per task (default: TranscriptRecipe's all-task mix;
    WALKER_MIX for the walker, which takes WALKER_STEP_FRACTION of the steps, of WALKER_BATCH_TOKENS each, with a
    SwiGLU of WALKER_MLP_RATIO x d_model and WALKER_HEADS heads).
    """
    check_settings(settings)
    walker = task_mix is not None and dict(task_mix) == WALKER_MIX
    config = OrganismConfig(d_model=settings.organism_d_model, n_layers=settings.organism_layers,
                            d_mlp=(WALKER_MLP_RATIO if walker else 4) * settings.organism_d_model,
                            **({"n_heads": WALKER_HEADS} if walker else {}))
    recipe = TranscriptRecipe(n_episodes=settings.n_episodes, n_random_episodes=settings.n_random_episodes,
                              gamma=settings.gamma, gridworld_max_steps=settings.gridworld_max_steps,
                              graph_walk_steps=settings.graph_walk_steps,
                              **({"task_mix": dict(task_mix)} if task_mix is not None else {}))
    # the precision is resolved here, not at train time, so that it is part of the organism's cache key
    shape = (dict(steps=max(1, round(settings.organism_steps * WALKER_STEP_FRACTION)), batch_tokens=WALKER_BATCH_TOKENS)
             if walker else dict(steps=settings.organism_steps))
    training = TrainingConfig(**shape, seed=organism_seed(settings), precision=matmul_precision(settings.device).dtype)
    return config, recipe, training


def organism_params(settings, task_mix: dict | None = None) -> tuple[dict, tuple, str]:
    """The cache key of the organism these settings describe, its three configs and the device it trains on."""
    config, recipe, training = configs_from_settings(settings, task_mix)
    device = pick_device(settings.device)
    # the words it reads are part of what it is: a renamed word must not reuse a network saved with the old name
    vocabulary = hashlib.sha256("\n".join(transcript_vocabulary()).encode()).hexdigest()[:16]
    params = {"config": dataclasses.asdict(config), "recipe": dataclasses.asdict(recipe),
              "training": dataclasses.asdict(training), "device": device, "vocabulary": vocabulary}
    return params, (config, recipe, training), device


def trained_organism(settings, store=None, task_mix: dict | None = None):
    """The folder of the organism these settings describe, trained first if the cache lacks it.

    Args: settings: a resolved Preset; store: a tdsae.artifacts.ArtifactStore (default: the cache home);
    task_mix: what it reads (default the all-task mix; WALKER_MIX trains the walker chapter 9 studies).
    Returns: Path loadable by tdsae.models.load_model. The cache key holds every config field (the
    precision included) and the device, so changing any knob, the precision, or training on CUDA
    instead of the CPU, trains a new organism.
    """
    params, (config, recipe, training), device = organism_params(settings, task_mix)
    store = ArtifactStore() if store is None else store
    return store.load_or_build("organism", params, lambda tmp: train_organism(tmp, config, recipe, training, device))


def trained_population(settings, task_mixes=(None, WALKER_MIX), store=None, workers: int | None = None) -> dict:
    """Every organism of the population, for each task mix, trained first where the cache lacks it, several at once.

    A 1M-parameter network's matrices are too small to keep many cores busy, so the missing organisms train in
    ``workers`` processes (default: one per core the process may use, at most one per organism), longest
    first, each on cores // workers threads (on 2 AVX2 cores that gains little: 1.16x for organisms, none for
    walkers; benchmarks/organism.py). On the CPU torch's kernels give these networks the same
    weights at any thread count (tests/test_pipeline.py), so the schedule never changes an organism.
    On CUDA they train one at a time, in this process.

    Args: task_mixes: None (the all-task organism) and/or WALKER_MIX. Returns: {(organism, mix): Path}
    with mix "all" or "walker".
    """
    check_settings(settings)
    store = ArtifactStore() if store is None else store
    jobs = {(member.organism, "walker" if mix is not None else "all"): (member, mix)
            for mix in task_mixes for member in population(settings)}
    missing = []
    for key, (member, mix) in jobs.items():
        try:
            store.verify("organism", organism_params(member, mix)[0])
        except ArtifactError:
            missing.append(key)
    cores = usable_cores()
    workers = min(len(missing), cores if workers is None else check_count(workers, "workers"))
    if workers > 1 and pick_device(settings.device) == "cpu":
        # walkers read 4x the tokens per step: start them first so that no long job is left to run alone
        missing.sort(key=lambda key: key[1] != "walker")
        threads = max(1, cores // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = [pool.submit(_train_member, jobs[key][0], jobs[key][1], str(store.root), threads) for key in missing]
            for future in done:
                future.result()
    return {key: trained_organism(member, store, mix) for key, (member, mix) in jobs.items()}


def _train_member(settings, task_mix, root: str, threads: int) -> str:
    """One organism, trained in a worker process on ``threads`` threads (trained_population's unit of work)."""
    torch.set_num_threads(threads)
    return str(trained_organism(settings, ArtifactStore(Path(root)), task_mix))


def load_preset_model(settings, store=None):
    """The model a resolved preset names: the cached (or freshly trained) organism for
    ``model="organism"``, otherwise the hub id or directory, through load_model either way."""
    if check_settings(settings).model == ORGANISM:
        return load_model(trained_organism(settings, store), device=settings.device)
    return load_model(model_folder(settings.model), device=settings.device)
