"""Linear probes, cross-validated across experiments: what a layer makes linearly readable.

Folds split by experiment (GroupKFold), never by row: rows of one experiment share a history, and
a probe tested on rows of experiments it was trained on would be scored on near-copies.
"""

from __future__ import annotations

import numpy as np

from tdsae.validation import check_int, check_number


def probe_score(acts: np.ndarray, target: np.ndarray, groups: np.ndarray, kind: str = "ridge",
                n_splits: int = 5, alpha: float = 1.0) -> float:
    """Cross-validated score of a linear probe reading ``target`` from ``acts``.

    Args: acts [n, d]; target [n] (numbers for "ridge", labels for "logistic"); groups [n]
    experiment of each row; alpha: ridge penalty (inverse C for logistic), on standardised acts.
    Returns: out-of-fold R^2 ("ridge", pooled over folds) or accuracy ("logistic").
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind not in ("ridge", "logistic"):
        raise ValueError(f"unknown probe kind {kind!r}; choose 'ridge' or 'logistic'")
    n_splits = check_int(n_splits, "n_splits", 2)
    alpha = check_number(alpha, "alpha", low=0, low_open=True)
    acts, target, groups = np.asarray(acts, float), np.asarray(target), np.asarray(groups)
    if not len(acts) == len(target) == len(groups):
        raise ValueError(f"acts ({len(acts)}), target ({len(target)}) and groups ({len(groups)}) differ in length")
    predicted = np.empty(len(target), dtype=float)
    for train, test in GroupKFold(n_splits=n_splits).split(acts, target, groups):
        head = Ridge(alpha=alpha) if kind == "ridge" else LogisticRegression(C=1.0 / alpha, max_iter=2000)
        probe = make_pipeline(StandardScaler(), head).fit(acts[train], target[train])
        predicted[test] = probe.predict(acts[test])
    if kind == "logistic":
        return float(np.mean(predicted == target))
    residual = np.sum((target - predicted) ** 2)
    return float(1.0 - residual / np.sum((target - target.mean()) ** 2))
