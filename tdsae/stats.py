"""Small statistics shared by chapters: confidence intervals over experiments."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t confidence interval along ``axis``, ignoring NaN.

    Experiments are independent, so the interval is over experiments.
    Args:
        values: array, e.g. ``[n_experiments, n_episodes]``.
        level: coverage of the interval.
    Returns:
        (mean, low, high), each with ``axis`` removed.
    """
    values = np.asarray(values, dtype=float)
    n = np.sum(~np.isnan(values), axis=axis)
    mean = np.nanmean(values, axis=axis)
    sem = np.nanstd(values, axis=axis, ddof=1) / np.sqrt(n)
    half = stats.t.ppf(0.5 + level / 2, df=np.maximum(n - 1, 1)) * sem
    return mean, mean - half, mean + half


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Mean of ``a - b`` over experiments with its t interval: {"mean", "low", "high", "n"}.

    Args:
        a, b: ``[n_experiments]`` per-experiment summaries (e.g. mean reward) of two conditions.
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, low, high = mean_ci(diff, level)
    return {"mean": float(mean), "low": float(low), "high": float(high), "n": int(np.sum(~np.isnan(diff)))}


def masked_mean(values: np.ndarray, mask: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of ``values`` where ``mask`` is True along ``axis``; NaN (without a warning) where none is.

    Args:
        values, mask: arrays of the same shape, e.g. ``[n_experiments, n_episodes, n_steps]``.
    """
    values = np.where(mask, values, 0.0)
    count = np.sum(mask, axis=axis)
    total = np.sum(values, axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)
