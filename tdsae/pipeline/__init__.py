"""The one door from a preset to its artifacts: organisms, models, episodes, activations, SAEs, controls.

Each call builds what it needs once, through the artifact cache, keyed by every setting that shapes
it, and later chapters reload it:

    S = tdsae.resolve_settings("tiny")
    played = played_episodes(S, "twostep")                  # what the preset's model did (PlayResult)
    store = harvested_store(S, "twostep")                   # its residual stream (ActivationStore)
    l1, saes = analysis_saes(S, "twostep")                  # one SAE per layer, at the chosen sparsity
    untrained = untrained_source(S)                         # the same architecture, untrained
    for member in population(S): ...                        # the same, for every organism of the population

Modules: organisms (the organism's configs and training, the preset's model), weights (a pretrained
model's folder: a GGUF file dequantised once), episodes (play, held-out agents, harvest, the
untrained control), saes (per-layer SAEs and the L1 sweep), checkpoints (an organism's training
checkpoints harvested and decomposed, and chapter 11's study of them), universality (every organism, a second
SAE seed and the untrained network on the same transcripts, and two feature spaces compared), circuits (chapter 13:
the attention heads behind the organism's choice, found with discrete SAE codes and scored against ablations).
"""

from tdsae.pipeline.episodes import (AGENTS, agent_trajectories, episodes_for, harvest_params, harvested_store,
                                     model_source, play_params, played_episodes, task_for, untrained_source)
from tdsae.pipeline.organisms import (WALKER_BATCH_TOKENS, WALKER_MIX, WALKER_STEP_FRACTION, configs_from_settings,
                                      load_preset_model, organism_seed, organism_settings, population,
                                      pretrained_settings,
                                      trained_organism, trained_population)
from tdsae.pipeline.weights import model_folder, weights_description
from tdsae.pipeline.saes import (LayerSAE, analysis_saes, chosen_l1, l1_sweep, layer_saes, trained_and_untrained,
                                 training_rows)

__all__ = ["AGENTS", "WALKER_BATCH_TOKENS", "WALKER_MIX", "WALKER_STEP_FRACTION", "LayerSAE", "agent_trajectories",
           "analysis_saes", "chosen_l1", "configs_from_settings", "episodes_for", "harvest_params", "harvested_store",
           "l1_sweep", "layer_saes", "load_preset_model", "model_folder", "model_source", "organism_seed", "organism_settings", "play_params", "played_episodes",
           "population", "pretrained_settings", "task_for", "trained_and_untrained", "trained_population",
           "trained_organism", "training_rows", "untrained_source", "weights_description"]
