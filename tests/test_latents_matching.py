"""One-to-one latent matching by decoder direction, and following a latent back through checkpoints."""

import numpy as np
import pandas as pd
import pytest

from tdsae.latents.matching import cosine_matrix, match_one_to_one, settled_step, trace_back


def test_a_permuted_copy_is_matched_back_to_its_originals():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 16))
    order = rng.permutation(50)
    b = 3.0 * a[order] + rng.normal(0, 0.01, (50, 16))  # scaled rows: cosine does not care
    pairs = match_one_to_one(cosine_matrix(a, b))
    assert (order[pairs.b.to_numpy()] == pairs.a.to_numpy()).all()
    assert pairs.similarity.min() > 0.99


def test_matching_is_one_to_one_where_a_best_partner_is_not():
    similarity = np.array([[0.9, 0.8], [0.95, 0.1]])  # both rows' best partner is column 0
    pairs = match_one_to_one(similarity)
    assert sorted(pairs.b) == [0, 1] and pairs.similarity.sum() == pytest.approx(0.8 + 0.95)


def test_trace_back_follows_a_drifting_latent_and_says_when_it_settled():
    rng = np.random.default_rng(1)
    d, k = 32, 20
    final = rng.normal(size=(k, d))
    decoders, order = {}, np.arange(k)
    for step, noise in ((0, 3.0), (10, 0.6), (100, 0.05), (1000, 0.0)):
        order = rng.permutation(k)  # each checkpoint's SAE lists its latents in its own order
        decoders[step] = final[order] + rng.normal(0, noise, (k, d))
        if step == 10:
            at_10 = int(np.nonzero(order == 7)[0][0])
    trace = trace_back(decoders, latent=int(np.nonzero(order == 7)[0][0]))
    assert trace.step.tolist() == [1000, 100, 10, 0]
    assert trace.set_index("step").loc[10, "latent"] == at_10
    assert trace.cosine_to_final.is_monotonic_decreasing
    assert settled_step(trace, 0.9) == 100 and settled_step(trace, -1.0) == 0
    with pytest.raises(ValueError, match="out of range"):
        trace_back(decoders, latent=k)
    with pytest.raises(ValueError, match="at least one"):
        trace_back({}, latent=0)
    assert settled_step(pd.DataFrame({"step": [], "cosine_to_final": []})) is None
