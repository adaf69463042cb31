"""Which latent of one SAE is which latent of another: one-to-one matching by decoder direction or by activation.

    similarity = cosine_matrix(sae_a.W_dec, sae_b.W_dec)      # [k_a, k_b]
    pairs = match_one_to_one(similarity)                      # Hungarian: each latent at most one partner
    trace = trace_back({step: W_dec, ...}, latent=17)         # a final latent's ancestors, checkpoint by checkpoint

Matching is one-to-one (scipy's linear_sum_assignment, maximising the total similarity), as Paulo & Belrose
match the latents of two SAE seeds: a many-to-one "best partner" lets one latent stand for many and flatters
any comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.validation import check_int, check_number


def cosine_matrix(a, b) -> np.ndarray:
    """Cosine similarity of every row of a [k_a, d] with every row of b [k_b, d] (0 for a zero row)."""
    a, b = _as_rows(a, "a"), _as_rows(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"the rows differ in width: {a.shape[1]} and {b.shape[1]}")
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    a = a / np.where(norm_a > 0, norm_a, 1.0)[:, None]
    b = b / np.where(norm_b > 0, norm_b, 1.0)[:, None]
    return a @ b.T


def match_one_to_one(similarity) -> pd.DataFrame:
    """The one-to-one matching of rows to columns that maximises the summed similarity.

    Returns: one row per matched pair: a (row index), b (column index), similarity; min(k_a, k_b) pairs.
    """
    from scipy.optimize import linear_sum_assignment

    similarity = np.asarray(similarity, float)
    if similarity.ndim != 2 or 0 in similarity.shape or not np.isfinite(similarity).all():
        raise ValueError(f"similarity must be a finite 2-d matrix with rows and columns; got shape "
                         f"{similarity.shape}")
    rows, columns = linear_sum_assignment(similarity, maximize=True)
    return pd.DataFrame({"a": rows, "b": columns, "similarity": similarity[rows, columns]})


def trace_back(decoders: dict, latent: int) -> pd.DataFrame:
    """A latent of the last SAE followed back through earlier ones by one-to-one decoder matching.

    Args: decoders: {step: W_dec [k, d]}, e.g. one SAE per training checkpoint of the same layer (the same
    residual stream, so directions are comparable); latent: a latent of the last step's SAE.
    Returns: one row per step, newest first: step, latent (its ancestor in that step's SAE), match_cosine
    (cosine with the latent it was matched to one step later; NaN at the last step), cosine_to_final
    (cosine with the traced latent's own direction).
    """
    if not decoders:
        raise ValueError("trace_back needs at least one SAE decoder")
    steps = sorted(decoders)
    final = _as_rows(decoders[steps[-1]], f"decoders[{steps[-1]}]")
    latent = check_int(latent, "latent", 0)
    if latent >= len(final):
        raise ValueError(f"latent {latent} is out of range: the last SAE has {len(final)} latents")
    rows = [{"step": steps[-1], "latent": latent, "match_cosine": np.nan, "cosine_to_final": 1.0}]
    current = latent
    for earlier, later in zip(steps[-2::-1], steps[::-1]):
        pairs = match_one_to_one(cosine_matrix(decoders[earlier], decoders[later]))
        partner = pairs[pairs.b == current]
        if partner.empty:  # the earlier SAE has fewer latents and none was left for this one
            break
        current = int(partner.a.iloc[0])
        direction = _as_rows(decoders[earlier], f"decoders[{earlier}]")[current]
        rows.append({"step": earlier, "latent": current, "match_cosine": float(partner.similarity.iloc[0]),
                     "cosine_to_final": float(cosine_matrix(direction[None], final[latent][None])[0, 0])})
    return pd.DataFrame(rows)


def settled_step(trace: pd.DataFrame, threshold: float = 0.9):
    """The earliest step from which the traced direction stays within ``threshold`` cosine of the final one at
    every later step (the last step always is); None for an empty trace."""
    threshold = check_number(threshold, "threshold", low=-1, high=1)
    ordered = trace.sort_values("step")
    settled = None
    for step, cosine in zip(ordered.step[::-1], ordered.cosine_to_final[::-1]):
        if not cosine >= threshold:
            break
        settled = int(step)
    return settled


def _as_rows(matrix, name: str) -> np.ndarray:
    """A matrix as a float numpy array [k, d] (torch tensors are detached and moved to the CPU)."""
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().float().cpu().numpy()
    matrix = np.asarray(matrix, float)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a matrix [latents, width]; got shape {matrix.shape}")
    return matrix
