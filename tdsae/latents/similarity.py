"""How alike two SAE feature spaces are (Lan et al.'s measures, with the nulls their numbers need).

    corr = latent_correlations(acts_a, acts_b)             # [k_a, k_b] on the same tokens, z-scored
    pairs = pair_latents(corr, "one-to-one")               # or "many-to-one", the paper's best partner
    svcca(dec_a[pairs.a], dec_b[pairs.b], rule="intended") # or rule="released" (one principal component)
    rsa(dec_a[pairs.a], dec_b[pairs.b])                    # Spearman between Pearson similarity matrices
    linear_cka(resid_a, resid_b)                           # the residual streams themselves, no SAE
    permutation_null(svcca, dec_a[pairs.a], dec_b[pairs.b], n_permutations=1000, seed=0)

Two traps of the released code are kept visible rather than repeated. Its SVCCA keeps principal components
while their *normalised* cumulative variance is below 0.99 times the *total* variance, which for any total
above about 1 keeps one component: the score is then |r| of the first principal component's scores
(``rule="released"``). The intended rule (99% of the variance, ``rule="intended"``) is biased upwards at small
sizes: on independent random rows it gives about 0.49 with 200 pairs in 64 dimensions. So every score is read
against a null that shuffles the pairing, and the p-value is (1 + b) / (1 + N), never 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from tdsae.latents.matching import match_one_to_one
from tdsae.validation import check_count, check_number, check_seed

SVCCA_RULES = ("released", "intended")
PAIRINGS = ("many-to-one", "one-to-one")
VARIANCE_KEPT = 0.99  # SVCCA's share of variance (the intended rule)


def _matrix(values, name: str) -> np.ndarray:
    values = np.asarray(values.detach().float().cpu().numpy() if hasattr(values, "detach") else values, float)
    if values.ndim != 2 or 0 in values.shape or not np.isfinite(values).all():
        raise ValueError(f"{name} must be a finite 2-d matrix [rows, columns]; got shape {values.shape}")
    return values


def _same_rows(a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ValueError(f"the two matrices must have the same rows (paired latents or the same tokens); got "
                         f"{len(a)} and {len(b)}")


def principal_components_kept(singular_values, rule: str) -> int:
    """How many principal components SVCCA keeps under a rule, from the singular values of the centred data.

    "intended": the fewest whose cumulative share of the variance reaches 0.99. "released": the released code's
    test, the cumulative *share* against 0.99 times the *total* variance, which keeps one component whenever the
    total variance exceeds about 1.01.
    """
    if rule not in SVCCA_RULES:
        raise ValueError(f"unknown SVCCA rule {rule!r}; choose one of: {', '.join(SVCCA_RULES)}")
    variance = np.asarray(singular_values, float) ** 2
    share = np.cumsum(variance) / variance.sum()
    bar = VARIANCE_KEPT * (variance.sum() if rule == "released" else 1.0)
    reached = share >= bar - 1e-12
    return int(np.argmax(reached)) + 1  # argmax of all-False is 0: one component, as the released code keeps


def svcca(a, b, rule: str = "intended") -> dict:
    """SVCCA of two paired sets of vectors, a [n_pairs, d_a] and b [n_pairs, d_b] (e.g. paired decoder rows).

    As in Lan et al.'s code, each vector dimension is a "neuron" and each pair a "datapoint": the dimensions are
    centred over the pairs, reduced to their top principal components (rule: principal_components_kept), and the
    mean canonical correlation of the two reductions is the score. Needs more pairs than dimensions.
    Returns: {"score", "k_a", "k_b"}.
    """
    (basis_a, k_a), (basis_b, k_b) = _svcca_bases(a, b, rule)
    return {"score": _mean_canonical(basis_a, basis_b), "k_a": k_a, "k_b": k_b}


def _svcca_bases(a, b, rule: str) -> list[tuple[np.ndarray, int]]:
    """For each side, an orthonormal basis [n_pairs, k] of its kept principal-component scores, and k."""
    a, b = _matrix(a, "a"), _matrix(b, "b")
    _same_rows(a, b)
    if len(a) <= max(a.shape[1], b.shape[1]):
        raise ValueError(f"SVCCA needs more pairs than dimensions: {len(a)} pairs of {a.shape[1]} and {b.shape[1]} "
                         "dimensions")
    bases = []
    for values in (a, b):
        u, s, _ = np.linalg.svd(values - values.mean(0), full_matrices=False)
        k = principal_components_kept(s, rule)
        scores = u[:, :k] * s[:k]
        bases.append((np.linalg.qr(scores - scores.mean(0))[0], k))
    return bases


def _mean_canonical(basis_a: np.ndarray, basis_b: np.ndarray) -> float:
    """The mean canonical correlation of two sets of variables, given orthonormal bases of their centred spans."""
    return float(np.clip(np.linalg.svd(basis_a.T @ basis_b, compute_uv=False), 0.0, 1.0).mean())


def rsa(a, b) -> float:
    """Representational similarity: Pearson similarity between every two rows within a and within b (the lower
    triangles), compared by Spearman correlation. a [n, d_a], b [n, d_b] paired row by row."""
    a, b = _matrix(a, "a"), _matrix(b, "b")
    _same_rows(a, b)
    if len(a) < 3:
        raise ValueError(f"RSA needs at least 3 paired rows; got {len(a)}")
    lower = np.tril_indices(len(a), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = [np.nan_to_num(np.corrcoef(m)[lower]) for m in (a, b)]
    return float(stats.spearmanr(*sims).statistic)


def linear_cka(x, y) -> float:
    """Linear centred kernel alignment of two representations of the same rows: x [n, d_x], y [n, d_y]."""
    x, y = _matrix(x, "x"), _matrix(y, "y")
    _same_rows(x, y)
    x, y = x - x.mean(0), y - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def latent_correlations(acts_a, acts_b) -> np.ndarray:
    """Pearson correlation of every latent of a [n_tokens, k_a] with every latent of b [n_tokens, k_b] on the same
    tokens (z-scored columns); a latent constant on these tokens (dead) correlates NaN with everything."""
    acts_a, acts_b = _matrix(acts_a, "acts_a"), _matrix(acts_b, "acts_b")
    _same_rows(acts_a, acts_b)
    z = []
    for acts in (acts_a, acts_b):
        centred = acts - acts.mean(0)
        scale = np.sqrt((centred ** 2).mean(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            z.append(np.where(scale > 1e-12, centred / scale, np.nan))
    return z[0].T @ z[1] / len(acts_a)


def pair_latents(correlation, how: str = "one-to-one", threshold: float | None = None) -> pd.DataFrame:
    """Partners for the latents of a from their correlations with b's (latent_correlations; NaN: dead).

    how="many-to-one": each live latent of a takes its best partner by signed correlation, as Lan et al. pair
    (one latent of b may stand for many); "one-to-one": Hungarian matching maximising the summed correlation.
    threshold: keep only pairs correlating at least this much. Returns: rows a, b, correlation.
    """
    if how not in PAIRINGS:
        raise ValueError(f"unknown pairing {how!r}; choose one of: {', '.join(PAIRINGS)}")
    if threshold is not None:
        threshold = check_number(threshold, "threshold", low=-1, high=1)
    correlation = np.asarray(correlation, float)
    if correlation.ndim != 2:
        raise ValueError(f"correlation must be a matrix [k_a, k_b]; got shape {correlation.shape}")
    live_a = np.nonzero(np.isfinite(correlation).any(1))[0]
    live_b = np.nonzero(np.isfinite(correlation).any(0))[0]
    if len(live_a) == 0 or len(live_b) == 0:
        return pd.DataFrame({"a": [], "b": [], "correlation": []})
    live = np.nan_to_num(correlation[np.ix_(live_a, live_b)], nan=-1.0)
    if how == "many-to-one":
        best = live.argmax(1)
        pairs = pd.DataFrame({"a": live_a, "b": live_b[best], "correlation": live[np.arange(len(live_a)), best]})
    else:
        matched = match_one_to_one(live)
        pairs = pd.DataFrame({"a": live_a[matched.a], "b": live_b[matched.b], "correlation": matched.similarity})
    if threshold is not None:
        pairs = pairs[pairs.correlation >= threshold]
    return pairs.reset_index(drop=True)


def _permutations(n: int, n_permutations: int, seed: int):
    """The shuffles every null here draws, in order: one seeded stream, so the fast and the generic null agree."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(13,)))
    return (rng.permutation(n) for _ in range(n_permutations))


def _null_record(observed: float, null: np.ndarray) -> dict:
    return {"score": float(observed), "null_mean": float(null.mean()), "null_high": float(np.percentile(null, 95)),
            "p": float((1 + np.sum(null >= observed)) / (1 + len(null)))}


def permutation_null(measure, a, b, n_permutations: int = 1000, seed: int = 0) -> dict:
    """A similarity against the same similarity with the pairing shuffled (b's rows permuted), seeded.

    Args: measure(a, b) -> float, or a dict with "score"; a, b: paired rows.
    Returns: {"score", "null_mean", "null_high" (its 95th percentile), "p" = (1 + b) / (1 + N), where b counts
    shuffles scoring at least the observed score}. svcca_null and rsa_null give the same for those measures,
    faster.
    """
    n_permutations, seed = check_count(n_permutations, "n_permutations"), check_seed(seed)
    a, b = _matrix(a, "a"), _matrix(b, "b")
    _same_rows(a, b)

    def score(x, y) -> float:
        value = measure(x, y)
        return float(value["score"] if isinstance(value, dict) else value)

    null = np.array([score(a, b[order]) for order in _permutations(len(b), n_permutations, seed)])
    return _null_record(score(a, b), null)


def svcca_null(a, b, rule: str = "intended", n_permutations: int = 1000, seed: int = 0) -> dict:
    """permutation_null of svcca, computed once per matrix: shuffling b's rows only shuffles the rows of its
    principal-component scores, so each shuffle costs one small product instead of two SVDs.
    Returns: permutation_null's record with svcca's "k_a" and "k_b"."""
    n_permutations, seed = check_count(n_permutations, "n_permutations"), check_seed(seed)
    (basis_a, k_a), (basis_b, k_b) = _svcca_bases(a, b, rule)
    null = np.array([_mean_canonical(basis_a, basis_b[order])
                     for order in _permutations(len(basis_b), n_permutations, seed)])
    return {**_null_record(_mean_canonical(basis_a, basis_b), null), "k_a": k_a, "k_b": k_b}


def rsa_null(a, b, n_permutations: int = 1000, seed: int = 0) -> dict:
    """permutation_null of rsa, computed once per matrix: shuffling b's rows reorders the same similarities, so
    their ranks are computed once and each shuffle costs one correlation of ranks."""
    n_permutations, seed = check_count(n_permutations, "n_permutations"), check_seed(seed)
    observed = rsa(a, b)  # validates the pair; its similarity matrices are rebuilt below as ranks, once
    a, b = _matrix(a, "a"), _matrix(b, "b")
    lower = np.tril_indices(len(a), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim_a, sim_b = (np.nan_to_num(np.corrcoef(m)) for m in (a, b))
    ranks_a = stats.rankdata(sim_a[lower])
    ranks_b = np.zeros_like(sim_b)
    ranks_b[lower] = stats.rankdata(sim_b[lower])
    ranks_b = ranks_b + ranks_b.T  # each unordered pair's rank, on both sides of the diagonal
    flat_b = ranks_b.ravel()
    centred_a = ranks_a - ranks_a.mean()
    # a shuffle reorders the same ranks, so their mean and spread are the shuffle's too: one dot product each
    spread = np.sqrt((centred_a ** 2).sum() * ((flat_b[lower[0] * len(b) + lower[1]] - ranks_a.mean()) ** 2).sum())
    null = np.array([centred_a @ flat_b[order[lower[0]] * len(b) + order[lower[1]]] / spread
                     for order in _permutations(len(b), n_permutations, seed)])
    return _null_record(observed, null)
