"""SAE feature-space similarity: SVCCA under both principal-component rules, RSA, linear CKA, latent pairing and
the shuffled-pairing null, each on data whose answer is known."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from tdsae.latents.similarity import (latent_correlations, linear_cka, pair_latents, permutation_null,
                                      principal_components_kept, rsa, svcca)


def unit_rows(rng, n, d):
    rows = rng.normal(size=(n, d))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_the_released_rule_keeps_one_component_and_the_intended_rule_keeps_99_percent():
    rng = np.random.default_rng(0)
    rows = unit_rows(rng, 500, 64)
    s = np.linalg.svd(rows - rows.mean(0), compute_uv=False)
    assert principal_components_kept(s, "released") == 1  # total variance ~500: the share never reaches 0.99 x 500
    kept = principal_components_kept(s, "intended")
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    assert share[kept - 1] >= 0.99 > share[kept - 2] and kept > 55
    with pytest.raises(ValueError, match="'both'"):
        principal_components_kept(s, "both")


@pytest.mark.parametrize("n_pairs,expected", [(200, 0.49), (1000, 0.21)])
def test_svcca_on_independent_rows_shows_the_intended_rules_small_sample_bias(n_pairs, expected):
    """Independent random unit rows in 64 dimensions share nothing, yet the intended rule scores about 0.49 at 200
    pairs and 0.21 at 1,000 (the bias the chapter's null corrects); the released rule, one component, near 0."""
    rng = np.random.default_rng(1)
    a, b = unit_rows(rng, n_pairs, 64), unit_rows(rng, n_pairs, 64)
    assert svcca(a, b, "intended")["score"] == pytest.approx(expected, abs=0.04)
    released = svcca(a, b, "released")
    assert released["k_a"] == released["k_b"] == 1 and released["score"] < 0.2


def test_svcca_rsa_and_cka_find_a_rotated_copy_identical():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 16)) * np.linspace(3, 0.5, 16)  # unequal variances: a well-defined first component
    rotated = 2.5 * a @ ortho_group.rvs(16, random_state=3)
    for rule in ("intended", "released"):
        assert svcca(a, rotated, rule)["score"] == pytest.approx(1.0, abs=1e-6)
    assert rsa(a, a * 3.0) == pytest.approx(1.0)
    assert linear_cka(a, rotated) == pytest.approx(1.0)
    other = rng.normal(size=(300, 16))
    assert linear_cka(a, other) < 0.2 and abs(rsa(a, other)) < 0.1


def test_pairing_recovers_planted_partners_one_to_one_and_many_to_one_may_reuse_a_partner():
    rng = np.random.default_rng(4)
    acts_a = np.maximum(rng.normal(size=(2000, 12)), 0)
    order = rng.permutation(12)
    acts_b = acts_a[:, order] + rng.normal(0, 0.1, (2000, 12))
    acts_b[:, 0] = acts_b[:, 1]  # b's latent 0 duplicates its latent 1: two of b's columns track one of a's
    acts_a[:, 5] = 0.0  # a dead latent of a: no partner at all
    corr = latent_correlations(acts_a, acts_b)
    assert np.isnan(corr[5]).all()
    one = pair_latents(corr, "one-to-one")
    assert 5 not in set(one.a) and one.b.is_unique
    recovered = {a: b for a, b in zip(one.a, one.b)}
    good = [a for a in range(12) if a not in (5, order[0])]
    assert all(order[recovered[a]] == a or recovered[a] == 0 for a in good)
    many = pair_latents(corr, "many-to-one")
    assert not many.b.is_unique or len(many) < 11  # a best partner can be shared
    assert len(pair_latents(corr, "one-to-one", threshold=0.9)) <= len(one)
    with pytest.raises(ValueError, match="'best'"):
        pair_latents(corr, "best")


def test_the_shuffled_pairing_null_rejects_a_real_pairing_and_not_an_independent_one():
    rng = np.random.default_rng(5)
    a = unit_rows(rng, 300, 16)
    related = a @ ortho_group.rvs(16, random_state=6) + rng.normal(0, 0.2, (300, 16))
    real = permutation_null(lambda x, y: svcca(x, y, "intended"), a, related, n_permutations=99, seed=0)
    assert real["p"] == pytest.approx(1 / 100) and real["score"] > real["null_high"]
    independent = permutation_null(rsa, a, unit_rows(rng, 300, 16), n_permutations=99, seed=0)
    assert independent["p"] > 0.05
    again = permutation_null(rsa, a, related, n_permutations=20, seed=7)
    assert again == permutation_null(rsa, a, related, n_permutations=20, seed=7)  # seeded


def test_similarity_refuses_unpaired_or_too_few_rows():
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError, match="same rows"):
        linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(9, 3)))
    with pytest.raises(ValueError, match="more pairs than dimensions"):
        svcca(rng.normal(size=(10, 16)), rng.normal(size=(10, 16)))
    with pytest.raises(ValueError, match="finite"):
        rsa(np.full((4, 2), np.nan), np.ones((4, 2)))


def test_the_fast_nulls_equal_the_generic_one_shuffle_for_shuffle():
    from tdsae.latents.similarity import rsa_null, svcca_null

    rng = np.random.default_rng(9)
    a = unit_rows(rng, 120, 8)
    b = a @ ortho_group.rvs(8, random_state=10) + rng.normal(0, 0.5, (120, 8))
    for rule in ("intended", "released"):
        fast = svcca_null(a, b, rule, n_permutations=30, seed=4)
        slow = permutation_null(lambda x, y: svcca(x, y, rule), a, b, n_permutations=30, seed=4)
        assert {k: fast[k] for k in slow} == pytest.approx(slow, abs=1e-9)
        assert (fast["k_a"], fast["k_b"]) == (svcca(a, b, rule)["k_a"], svcca(a, b, rule)["k_b"])
    assert rsa_null(a, b, n_permutations=30, seed=4) == pytest.approx(permutation_null(rsa, a, b, 30, 4), abs=1e-9)
