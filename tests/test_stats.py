import numpy as np
import pytest

from tdsae.stats import masked_mean, mean_ci, paired_difference, population_interval


def test_ci_covers_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(0)
    samples = rng.normal(1.0, 2.0, size=(2000, 30))
    _, low, high = mean_ci(samples, axis=1)
    coverage = np.mean((low < 1.0) & (1.0 < high))
    assert 0.93 < coverage < 0.97


def test_paired_difference_detects_a_shift_and_not_its_absence():
    rng = np.random.default_rng(1)
    base = rng.normal(size=100)
    shifted = paired_difference(base + 0.5 + rng.normal(0, 0.1, 100), base)
    assert shifted["low"] > 0.4 and shifted["high"] < 0.6 and shifted["n"] == 100
    same = paired_difference(base + rng.normal(0, 0.1, 100), base)
    assert same["low"] < 0 < same["high"]


def test_masked_mean_ignores_masked_values_and_gives_nan_for_empty_rows():
    values = np.array([[1.0, 100.0, 3.0], [5.0, 6.0, 7.0]])
    mask = np.array([[True, False, True], [False, False, False]])
    out = masked_mean(values, mask, axis=1)
    assert out[0] == 2.0 and np.isnan(out[1])


def test_population_interval_is_a_t_interval_over_organisms():
    draws = np.random.default_rng(0).normal(1.0, 1.0, size=(4000, 3))  # 4000 populations of three organisms
    intervals = [population_interval(row) for row in draws]
    coverage = np.mean([i["low"] <= 1.0 <= i["high"] for i in intervals])
    assert 0.93 < coverage < 0.97  # nominal 95% with n = 3 (a z-interval would cover only ~83%)
    single = population_interval([0.4])
    assert single["mean"] == 0.4 and np.isnan(single["low"]) and single["n"] == 1


def test_bootstrap_of_a_statistic_that_is_never_defined_is_nan_without_a_warning():
    import warnings

    from tdsae.stats import bootstrap_interval

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(bootstrap_interval(lambda chosen: np.nan, np.arange(5), 20, 0)).all()
    low, high = bootstrap_interval(lambda chosen: float(np.mean(chosen)), np.arange(10), 200, 0)
    assert 2 < low < 4.5 < high < 7


def test_residualize_is_the_least_squares_residual_even_for_a_rank_deficient_design():
    from tdsae.stats import residualize

    rng = np.random.default_rng(1)
    values = rng.normal(size=(200, 7))
    covariates = np.column_stack([rng.integers(0, 2, 200), np.zeros(200), rng.normal(size=200)])  # a dead column
    design = np.column_stack([np.ones(200), covariates])
    expected = values - design @ np.linalg.lstsq(design, values, rcond=None)[0]
    np.testing.assert_allclose(residualize(values, covariates), expected, atol=1e-12)
    np.testing.assert_allclose(residualize(values, None), values - values.mean(0), atol=1e-12)
    assert np.abs(design.T @ residualize(values, covariates)).max() < 1e-9  # orthogonal to every regressor


def test_emergence_step_is_the_last_switch_on_and_none_when_it_is_off_at_the_end():
    from tdsae.stats import emergence_step

    assert emergence_step([0, 10, 30, 100], [False, False, True, True]) == 30
    assert emergence_step([100, 0, 30, 10], [True, False, True, False]) == 30  # any order
    assert emergence_step([0, 10, 30, 100], [False, True, False, True]) == 100  # a flicker on at 10 is not it
    assert emergence_step([0, 10, 30, 100], [True, True, True, False]) is None
    assert emergence_step([0, 10], [True, True]) == 0
    with pytest.raises(ValueError, match="same length"):
        emergence_step([0, 10], [True])
