"""Figure helpers: each takes data and returns a matplotlib Figure.

Call :func:`apply_style` once per chapter; nothing here changes global state at import or calls
``plt.show()``. One module per part of the book; every helper is importable from ``tdsae.plots``.
"""

from tdsae.plots.behaviour import (plot_bic_differences, plot_choice_agreement, plot_effects, plot_model_recovery,
                                   plot_recovery, plot_stay_probabilities, plot_training_loss)
from tdsae.plots.circuits import plot_head_effects, plot_method_aucs
from tdsae.plots.core import FIGURE_DPI, PALETTE, ROLE_COLOURS, apply_style, figure_legend, new_figure
from tdsae.plots.development import (plot_emergence, plot_emergence_timeline, plot_level_shares, plot_sae_metrics,
                                     plot_seed_strengths, plot_traces)
from tdsae.plots.latents import plot_layer_profile, plot_population_profiles, plot_reference_sweep
from tdsae.plots.population import plot_population
from tdsae.plots.residual import plot_norms_by_layer, plot_probe_by_layer, plot_projection
from tdsae.plots.sae import plot_metrics_by_layer, plot_sparsity_frontier, plot_training_logs
from tdsae.plots.universality import plot_ladder, plot_layer_grid, plot_tracked_pairing
from tdsae.plots.tasks import (plot_activation_footprint, plot_curves_with_ci, plot_graph, plot_gridworld, plot_matrix,
                               plot_reward_curves, plot_twostep_schematic)

__all__ = [
    "FIGURE_DPI", "PALETTE", "ROLE_COLOURS", "apply_style", "figure_legend", "new_figure", "plot_activation_footprint", "plot_bic_differences",
    "plot_choice_agreement", "plot_curves_with_ci", "plot_effects", "plot_emergence", "plot_emergence_timeline",
    "plot_level_shares", "plot_graph", "plot_gridworld", "plot_head_effects", "plot_method_aucs", "plot_ladder", "plot_layer_grid", "plot_layer_profile", "plot_matrix",
    "plot_metrics_by_layer", "plot_model_recovery", "plot_norms_by_layer", "plot_probe_by_layer", "plot_population", "plot_population_profiles", "plot_projection",
    "plot_recovery", "plot_reference_sweep", "plot_sae_metrics", "plot_seed_strengths", "plot_sparsity_frontier", "plot_stay_probabilities", "plot_training_logs", "plot_training_loss",
    "plot_reward_curves", "plot_traces", "plot_tracked_pairing", "plot_twostep_schematic",
]
