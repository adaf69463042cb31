"""Statistics shared across the book: correlations, partial-correlation residuals, and intervals over
experiments (a t interval for per-experiment summaries; one percentile bootstrap that resamples whole
experiments, used by every analysis that needs one)."""

from __future__ import annotations

import numpy as np
from scipy import stats

from tdsae.validation import check_int, check_seed


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


def population_interval(values, level: float = 0.95) -> dict[str, float]:
    """Mean of per-organism values with a Student-t interval over organisms: {"mean", "low", "high", "n"}.

    Organisms of a population differ only in their training seed, so they are independent draws from
    the networks one recipe trains; the interval is for the mean over such draws. With n = 3 the t
    quantile is 4.30, so an effect must be large beside the spread between organisms to exclude 0.
    With a single organism there is no interval over organisms: low and high are NaN.
    """
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0 or np.isnan(values).any():
        raise ValueError(f"population_interval needs one finite value per organism, got {values.tolist()}")
    if values.size == 1:
        return {"mean": float(values[0]), "low": float("nan"), "high": float("nan"), "n": 1}
    mean, low, high = mean_ci(values, level)
    return {"mean": float(mean), "low": float(low), "high": float(high), "n": int(values.size)}


def masked_mean(values: np.ndarray, mask: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of ``values`` where ``mask`` is True along ``axis``; NaN (without a warning) where none is.

    Args:
        values, mask: arrays of the same shape, e.g. ``[n_experiments, n_episodes, n_steps]``.
    """
    values = np.where(mask, values, 0.0)
    count = np.sum(mask, axis=axis)
    total = np.sum(values, axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def residualize(values: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """values [n] or [n, k] minus their least-squares fit on an intercept and covariates [n, c]."""
    values = np.asarray(values, float)
    if covariates is None:
        return values - values.mean(0)
    design = np.column_stack([np.ones(len(values)), covariates])
    # project on an orthonormal basis of the design's column space (its left singular vectors with non-zero
    # singular values): the least-squares residual, rank-deficient designs included, at a fraction of lstsq's
    # cost when values has hundreds of columns (every latent of an SAE)
    basis, singular, _ = np.linalg.svd(design, full_matrices=False)
    basis = basis[:, singular > singular.max() * max(design.shape) * np.finfo(float).eps]
    return values - basis @ (basis.T @ values)


def correlations(units: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r of every column of units [n, k] with target [n]; NaN for a constant column."""
    units = np.asarray(units, float)
    centred, y = units - units.mean(0), np.asarray(target, float) - np.mean(target)
    scale = np.sqrt((centred ** 2).sum(0) * (y ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (centred * y[:, None]).sum(0) / scale
    return np.where(scale > 1e-12, r, np.nan)


def experiment_rows(experiments: np.ndarray):
    """A function from drawn experiment labels to the rows they hold (repeats kept, in draw order).

    Args: experiments [n] the experiment of each row. Returns: rows(chosen) -> int array of row indices.
    """
    experiments = np.asarray(experiments)
    members = {label: np.nonzero(experiments == label)[0] for label in np.unique(experiments)}
    none = np.zeros(0, int)
    return lambda chosen: np.concatenate([members.get(label, none) for label in chosen])


def bootstrap_interval(statistic, labels, n_boot: int, rng, percentiles=(2.5, 97.5)) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over draws of ``labels`` with replacement (NaN draws ignored).

    Args: statistic(chosen) -> float, where chosen holds len(labels) labels drawn with replacement
    (experiments: map them to rows with experiment_rows); n_boot: draws (0 gives NaN, NaN); rng: a
    seed or a numpy Generator (shared by successive intervals that continue one stream).
    """
    if check_int(n_boot, "n_boot", 0) == 0:
        return np.nan, np.nan
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(check_seed(rng, "rng"))
    labels = np.asarray(labels)
    draws = np.asarray([statistic(labels[rng.integers(0, len(labels), len(labels))]) for _ in range(n_boot)], float)
    if np.isnan(draws).all():  # e.g. a unit that never fires on the rows drawn: no interval, and no warning
        return np.nan, np.nan
    low, high = np.nanpercentile(draws, list(percentiles))
    return float(low), float(high)


def emergence_step(steps, holds):
    """The earliest step from which ``holds`` is True at every later step ("for good"), or None if it is False at
    the last one. A measure that flickers on early and off again emerges at its last switch-on.

    Args: steps [n] (e.g. training checkpoints) and holds [n] bool, in any order (sorted by step here).
    """
    steps, holds = np.asarray(steps), np.asarray(holds, bool)
    if steps.shape != holds.shape or steps.ndim != 1:
        raise ValueError(f"steps {steps.shape} and holds {holds.shape} must be two lists of the same length")
    order = np.argsort(steps)
    emerged = None
    for step, held in zip(steps[order][::-1], holds[order][::-1]):
        if not held:
            break
        emerged = step.item()
    return emerged
