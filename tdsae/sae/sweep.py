"""Choosing the sparsity of an SAE from a sweep over L1 coefficients."""

from __future__ import annotations

import pandas as pd

from tdsae.validation import check_number

# L1 coefficients swept by chapter 6, in normalised units (so the same grid serves every model): the
# paper's 1e-5, then the range where codes go from dense to sparse on the organism.
L1_GRID = (1e-5, 0.3, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0)


def choose_l1(sweep: pd.DataFrame, min_explained_variance: float) -> float:
    """The sparsest setting that still reconstructs: the largest L1 coefficient whose held-out explained
    variance, averaged over layers, is at least min_explained_variance (the smallest in the grid if none is)."""
    check_number(min_explained_variance, "min_explained_variance", high=1)
    mean = mean_explained_variance(sweep)
    good = mean[mean >= min_explained_variance]
    return float(good.index.max() if len(good) else mean.index.min())


def mean_explained_variance(sweep: pd.DataFrame) -> pd.Series:
    """Held-out explained variance averaged over layers, by L1 coefficient."""
    return sweep.groupby("l1").explained_variance.mean()
