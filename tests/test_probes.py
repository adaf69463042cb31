"""Cross-validated probes read what is linearly there, and nothing from rows of the experiments they trained on."""

import numpy as np
import pytest

from tdsae.latents.probes import probe_score


def test_a_linear_signal_is_read_and_noise_is_not():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 25)
    acts = rng.normal(size=(500, 10))
    target = acts @ rng.normal(size=10) + 0.3 * rng.normal(size=500)
    assert probe_score(acts, target, groups) > 0.9
    assert probe_score(acts, rng.normal(size=500), groups) < 0.05
    labels = (acts[:, 0] > 0).astype(int)
    assert probe_score(acts, labels, groups, kind="logistic") > 0.9


def test_folds_split_by_experiment_so_memorised_experiments_do_not_count():
    """Each experiment has its own offset in both acts and target: a row-wise split would read it off
    near-identical rows; an experiment-wise split cannot, because a test experiment's offset is never seen."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(30), 20)
    codes = rng.normal(size=(30, 40))  # an experiment's fingerprint in the acts, unrelated to its target
    acts = codes[groups] + 0.01 * rng.normal(size=(600, 40))
    target = rng.normal(size=30)[groups]  # one value per experiment
    assert probe_score(acts, target, groups, alpha=1e-3) < 0.2


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown probe kind 'lasso'"):
        probe_score(np.zeros((10, 2)), np.zeros(10), np.arange(10), kind="lasso")
    with pytest.raises(ValueError, match="differ in length"):
        probe_score(np.zeros((10, 2)), np.zeros(9), np.arange(10))
