"""Behaviour: stay probabilities, and fitting models of choice to it (likelihoods, per-subject fits, BIC, recovery).

Models (PAPERS.md §1.5): Q-learning (alpha, beta; gamma 0.99), model-based (alpha, beta),
hybrid (alpha, beta, w; Two-Step Task only), win-stay-lose-shift (epsilon), copy-best-episode
(epsilon) and random (no parameters). Choices of the random-policy episodes are left out of
every likelihood but still drive learning.

    fits = fit_models(task, traj, n_random_episodes=7, seed=0)
    compare_models(fits)  # model, n_params, total_nll, total_bic, mean_bic, n_best, delta_bic
"""

from __future__ import annotations

from tdsae.behaviour.comparison import compare_models
from tdsae.behaviour.estimation import FitResult, fit_model, fit_models
from tdsae.behaviour.likelihoods import (GAMMA, MODELS, ModelSpec, ParamSpec, compute_nll, count_choices, get_model,
                                         make_choice_mask, models_for_task)
from tdsae.behaviour.recovery import RecoveryResult, draw_params, recover_models, recover_parameters, simulate_subjects
from tdsae.behaviour.stay import CONDITIONS, first_stage_table, stay_effects, stay_probabilities
from tdsae.behaviour.walks import next_node_prediction

__all__ = [
    "CONDITIONS", "GAMMA", "MODELS", "FitResult", "ModelSpec", "ParamSpec", "RecoveryResult", "compare_models",
    "compute_nll", "count_choices", "draw_params", "fit_model", "fit_models", "get_model",
    "make_choice_mask", "models_for_task", "next_node_prediction", "recover_models", "recover_parameters", "simulate_subjects", "first_stage_table",
    "stay_effects", "stay_probabilities",
]
