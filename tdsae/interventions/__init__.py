"""Causal tests of latents: edit them inside the forward pass (edits), and play or read with them edited
(experiments: lesions and negative scaling against frequency-matched controls), chapter 8's whole set of
tests of one network in one call (study), and per-head ablation at one token (heads: chapter 13's ground truth).

    edit = LatentEdit(layer=2, sae=saes[2].sae, latents=[17], factor=0.0)     # a lesion
    played = play_with_edits(model, task, 100, 30, seed=0, edits=[edit])
"""

from tdsae.interventions.edits import (EditedModel, LatentEdit, ce_loss_score, ce_loss_scores, play_with_edits,
                                      traced_output)
from tdsae.interventions.heads import ABLATIONS, ablate_heads, ablation_truths, attribution_scores, head_inputs
from tdsae.interventions.experiments import (behaviour_of, cached_play_with_edits, drop_difference, effects_against, later_layer_tracking,
                                             matched_latents, play_conditions)
from tdsae.interventions.study import (EDITED, EditTargets, InterventionStudy, choose_edit_targets, edit_conditions,
                                       intervention_study)

__all__ = ["ABLATIONS", "ablate_heads", "ablation_truths", "attribution_scores", "head_inputs", "EDITED", "EditTargets", "InterventionStudy", "choose_edit_targets", "edit_conditions",
           "intervention_study", "EditedModel", "LatentEdit", "behaviour_of", "cached_play_with_edits", "ce_loss_score", "ce_loss_scores", "drop_difference", "effects_against",
           "later_layer_tracking", "matched_latents", "play_conditions", "play_with_edits", "traced_output"]
