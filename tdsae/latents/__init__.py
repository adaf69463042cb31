"""Which units of the residual stream or its SAEs track a task's quantities, and how they are arranged.

    targets = reference_targets(task, played.trajectory, store.index, alpha=0.1, gamma=0.99)
    table = profile(stores, saes, targets, target="td_error", selection=split_experiments(100, seed=0))
    best_layers(table)      # per model and unit kind: the layer chosen on the selection half

Modules: targets (reference quantities, covariates, halves, nulls), search (the best unit or latent
pair, chosen on one half and reported on the other), profiles (that search layer by layer, and
comparisons between models), contrasts (chapters 7 and 9's panels and tests of one network in one
call), probes (cross-validated linear read-outs), geometry (node representations: communities and
MDS, and chapter 9's community tests), matching (one-to-one latent matching by decoder direction, and a
latent traced back through training checkpoints), concepts (token-level or concept-level latents, by nested
regressions), similarity (SVCCA under both principal-component rules, RSA, linear CKA, latent pairing by
activation correlation, the shuffled-pairing null).
"""

from tdsae.latents.contrasts import (CONTRASTS, PANELS, SR_CONTRASTS, SR_PANELS, LatentContrasts, panel_rows,
                                     sr_contrasts, td_q_contrasts)
from tdsae.latents.geometry import community_contrasts, community_silhouettes, mds_coordinates, node_means
from tdsae.latents.probes import probe_score
from tdsae.latents.profiles import (UNIT_KINDS, best_layers, compare_at_best_layers, compare_best, profile,
                                    reference_sweep, unit_profile, units_at, units_of)
from tdsae.latents.search import BestUnit, best_pair, best_unit
from tdsae.latents.targets import (TARGETS, covariates_of, reference_targets, shuffled_target, split_experiments,
                                   sr_targets)

__all__ = ["CONTRASTS", "PANELS", "SR_CONTRASTS", "SR_PANELS", "TARGETS", "UNIT_KINDS", "BestUnit", "LatentContrasts",
           "best_layers", "best_pair", "best_unit", "community_contrasts", "community_silhouettes",
           "compare_at_best_layers", "compare_best", "covariates_of", "mds_coordinates", "node_means",
           "panel_rows", "probe_score", "profile", "reference_sweep", "reference_targets",
           "shuffled_target", "split_experiments", "sr_contrasts", "sr_targets", "td_q_contrasts",
           "unit_profile", "units_at", "units_of"]
