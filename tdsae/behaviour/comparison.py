"""Model comparison by BIC: per subject, summed, and a tidy table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.behaviour.estimation import FitResult


def compare_models(fits: dict[str, FitResult] | list[FitResult]) -> pd.DataFrame:
    """One row per model, best (lowest total BIC) first.

    Columns: model, n_params, total_nll, total_bic, mean_bic, n_best (subjects whose lowest BIC
    is this model's; ties go to the first model listed), delta_bic (total_bic minus the lowest).
    Args: fits: FitResults of the same subjects (e.g. from fit_models).
    """
    fits = list(fits.values()) if isinstance(fits, dict) else list(fits)
    if not fits:
        raise ValueError("compare_models needs at least one FitResult")
    for fit in fits[1:]:
        if not np.array_equal(fit.n_choices, fits[0].n_choices):
            raise ValueError(f"fits {fits[0].model!r} and {fit.model!r} counted different choices "
                             "per subject; compare fits of the same trajectory and n_random_episodes")
    bic = np.stack([fit.bic for fit in fits])  # [n_models, n_subjects]
    winners = np.bincount(bic.argmin(axis=0), minlength=len(fits))
    table = pd.DataFrame({
        "model": [fit.model for fit in fits],
        "n_params": [fit.n_params for fit in fits],
        "total_nll": [float(fit.nll.sum()) for fit in fits],
        "total_bic": bic.sum(axis=1),
        "mean_bic": bic.mean(axis=1),
        "n_best": winners,
    })
    table["delta_bic"] = table["total_bic"] - table["total_bic"].min()
    return table.sort_values("total_bic", kind="stable").reset_index(drop=True)
