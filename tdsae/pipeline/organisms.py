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

from tdsae.artifacts import ArtifactStore
from tdsae.models import load_model
from tdsae.organism import OrganismConfig, TrainingConfig, TranscriptRecipe, train_organism
from tdsae.organism.corpus import seed_for
from tdsae.presets import check_settings
from tdsae.runtime import matmul_precision, pick_device
from tdsae.validation import ORGANISM

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


def configs_from_settings(settings, task_mix: dict | None = None) -> tuple[OrganismConfig, TranscriptRecipe,
                                                                           TrainingConfig]:
    """The organism's three configs from a resolved Preset (tiny: organism_* knobs, episodes, and the
    training seed of organism ``settings.organism``: organism_seed).

    task_mix: the recipe's share of batches per task (default: TranscriptRecipe's all-task mix;
    WALKER_MIX for the walker, which takes WALKER_STEP_FRACTION of the steps, of WALKER_BATCH_TOKENS each).
    """
    check_settings(settings)
    config = OrganismConfig(d_model=settings.organism_d_model, n_layers=settings.organism_layers,
                            d_mlp=4 * settings.organism_d_model)
    recipe = TranscriptRecipe(n_episodes=settings.n_episodes, n_random_episodes=settings.n_random_episodes,
                              gamma=settings.gamma, gridworld_max_steps=settings.gridworld_max_steps,
                              graph_walk_steps=settings.graph_walk_steps,
                              **({"task_mix": dict(task_mix)} if task_mix is not None else {}))
    # the precision is resolved here, not at train time, so that it is part of the organism's cache key
    walker = task_mix is not None and dict(task_mix) == WALKER_MIX
    shape = (dict(steps=max(1, round(settings.organism_steps * WALKER_STEP_FRACTION)), batch_tokens=WALKER_BATCH_TOKENS)
             if walker else dict(steps=settings.organism_steps))
    training = TrainingConfig(**shape, seed=organism_seed(settings), precision=matmul_precision(settings.device).dtype)
    return config, recipe, training


def trained_organism(settings, store=None, task_mix: dict | None = None):
    """The folder of the organism these settings describe, trained first if the cache lacks it.

    Args: settings: a resolved Preset; store: a tdsae.artifacts.ArtifactStore (default: the cache home);
    task_mix: what it reads (default the all-task mix; WALKER_MIX trains the walker chapter 9 studies).
    Returns: Path loadable by tdsae.models.load_model. The cache key holds every config field (the
    precision included) and the device, so changing any knob, the precision, or training on CUDA
    instead of the CPU, trains a new organism.
    """
    config, recipe, training = configs_from_settings(settings, task_mix)
    device = pick_device(settings.device)
    params = {"config": dataclasses.asdict(config), "recipe": dataclasses.asdict(recipe),
              "training": dataclasses.asdict(training), "device": device}
    store = ArtifactStore() if store is None else store
    return store.load_or_build("organism", params, lambda tmp: train_organism(tmp, config, recipe, training, device))


def load_preset_model(settings, store=None):
    """The model a resolved preset names: the cached (or freshly trained) organism for
    ``model="organism"``, otherwise the hub id or directory, through load_model either way."""
    if check_settings(settings).model == ORGANISM:
        return load_model(trained_organism(settings, store), device=settings.device)
    return load_model(settings.model, device=settings.device)
