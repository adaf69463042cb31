"""Layer profiles and comparisons between best units: the machinery behind chapters 7 and 9's headline claims."""

import numpy as np
import pandas as pd
import pytest

from conftest import planted_targets

from tdsae.latents.profiles import best_layers, compare_at_best_layers, compare_best, units_of
from tdsae.latents.targets import split_experiments


def _targets(n_experiments=40, per=30, seed=0):
    """A target table (one row per store row) whose values are standard normal."""
    rng = np.random.default_rng(seed)
    n = n_experiments * per
    return pd.DataFrame({"row": np.arange(n), "experiment": np.repeat(np.arange(n_experiments), per),
                         "step": np.tile(np.arange(per) % 3, n_experiments), "last_reward": rng.normal(size=n),
                         "target": rng.normal(size=n)})


def _units_with(y, noise, k=20, seed=1):
    """k noise units, unit 0 carrying y with the given noise s.d."""
    rng = np.random.default_rng(seed)
    units = rng.normal(size=(len(y), k))
    units[:, 0] = y + noise * rng.normal(size=len(y))
    return units


def test_a_stronger_unit_wins_with_an_interval_above_zero_and_equal_units_do_not():
    targets = _targets()
    y = targets.target.to_numpy()
    selection = split_experiments(40, seed=0)
    strong, weak = _units_with(y, 0.5, seed=1), _units_with(y, 2.0, seed=2)
    result = compare_best(strong, weak, targets, target="target", selection=selection, n_boot=300, seed=0)
    assert result["difference"] == pytest.approx(abs(result["r_a"]) - abs(result["r_b"]))
    assert abs(result["r_a"]) > 0.8 and abs(result["r_b"]) < 0.65  # expected about 0.89 and 0.45
    assert 0 < result["low"] < result["difference"] < result["high"]
    same = compare_best(strong, strong, targets, target="target", selection=selection, n_boot=300, seed=0)
    assert same["difference"] == 0 and same["low"] == same["high"] == 0  # paired: identical units never differ
    swapped = compare_best(weak, strong, targets, target="target", selection=selection, n_boot=300, seed=0)
    assert swapped["high"] < 0 and swapped["difference"] == pytest.approx(-result["difference"])


def test_the_comparison_is_made_on_the_report_half_only():
    """A unit that tracks the target only on the selection half is chosen there, and reports about nothing."""
    targets = _targets()
    y = targets.target.to_numpy()
    selection = split_experiments(40, seed=0)
    on_selection = selection[targets.experiment.to_numpy()]
    cheat = _units_with(np.where(on_selection, y, 0.0), 0.1, seed=3)
    honest = _units_with(y, 1.0, seed=4)
    result = compare_best(cheat, honest, targets, target="target", selection=selection, n_boot=200, seed=0)
    assert abs(result["r_a"]) < 0.2 < abs(result["r_b"]) and result["high"] < 0


def test_partial_comparison_removes_what_the_covariates_explain():
    targets = _targets()
    y = targets.target.to_numpy()
    selection = split_experiments(40, seed=0)
    reward_only = _units_with(targets.last_reward.to_numpy(), 0.1, seed=5)
    targets = targets.assign(target=y + 2 * targets.last_reward)  # mostly the reward
    tracker = _units_with(targets.target.to_numpy() - 2 * targets.last_reward.to_numpy(), 0.5, seed=6)
    plain = compare_best(reward_only, tracker, targets, target="target", selection=selection, n_boot=0)
    partial = compare_best(reward_only, tracker, targets, target="target", selection=selection, partial=True,
                           n_boot=200, seed=0)
    assert plain["difference"] > 0  # without the control the reward unit looks better
    assert partial["high"] < 0 and np.isnan(plain["low"])  # with it, the real tracker wins; n_boot=0: no interval


def test_best_layers_choose_on_the_selection_half_and_report_the_other():
    table = pd.DataFrame({"model": ["m"] * 3 + ["u"] * 2, "units": ["SAE latent"] * 5, "layer": [1, 2, 3, 1, 2],
                          "unit": [4, 5, 6, 7, 8], "r_select": [0.2, -0.7, 0.5, np.nan, 0.1],
                          "r_report": [0.6, -0.1, 0.4, 0.9, 0.05]})
    best = best_layers(table)
    assert best.loc[("m", "SAE latent"), "layer"] == 2  # largest |r_select|, though its report is the weakest
    assert best.loc[("m", "SAE latent"), "r_report"] == -0.1
    assert best.loc[("u", "SAE latent"), "layer"] == 2  # a NaN selection never wins


class _Store:
    def __init__(self, acts):
        self.acts_by_layer = acts

    def acts(self, layer, rows):
        return self.acts_by_layer[layer][np.asarray(rows)]


def test_compare_at_best_layers_reads_each_side_at_its_own_layer():
    targets = _targets()
    y = targets.target.to_numpy()
    selection = split_experiments(40, seed=0)
    noise = np.random.default_rng(7).normal(size=(len(y), 20))
    stores = {"a": _Store({1: noise, 2: _units_with(y, 0.3, seed=8)}),
              "b": _Store({1: _units_with(y, 1.5, seed=9), 2: noise})}
    best = pd.DataFrame({"layer": [2, 1]}, index=pd.MultiIndex.from_tuples([("a", "residual dimension"),
                                                                           ("b", "residual dimension")]))
    got = compare_at_best_layers(stores, {}, best, targets, target="target", selection=selection,
                                 a=("a", "residual dimension"), b=("b", "residual dimension"), n_boot=100, seed=0)
    direct = compare_best(stores["a"].acts(2, targets.row), stores["b"].acts(1, targets.row), targets, target="target",
                          selection=selection, n_boot=100, seed=0)
    assert got == direct and got["low"] > 0
    with pytest.raises(ValueError, match="unknown kind of unit 'neuron'"):
        units_of(stores, {}, "a", "neuron", 1, targets)


class _LayeredStore(_Store):
    @property
    def layers(self):
        return sorted(self.acts_by_layer)


def _split_sign_sae():
    """An 'SAE' whose latents are every dimension's positive and negative parts (what a ReLU SAE learns at best)."""
    from types import SimpleNamespace

    import torch

    return SimpleNamespace(sae=SimpleNamespace(encode=lambda x: torch.cat([torch.relu(x), torch.relu(-x)], 1),
                                               W_enc=torch.zeros(1), device="cpu"))


def test_td_q_contrasts_find_a_planted_td_and_q_code_only_in_the_network_that_has_it():
    from tdsae.latents import td_q_contrasts

    rng = np.random.default_rng(0)
    n_experiments, per = 40, 30
    n = n_experiments * per
    targets, surprise, q_diff = planted_targets(rng, n_experiments, per)
    noise = lambda seed: np.random.default_rng(seed).normal(size=(n, 8))  # noqa: E731
    coded = noise(1)
    coded[:, 0], coded[:, 1] = surprise + 0.5 * rng.normal(size=n), q_diff + 0.5 * rng.normal(size=n)
    stores = {"trained": _LayeredStore({1: noise(2), 2: coded}), "untrained": _LayeredStore({1: noise(3), 2: noise(4)})}
    saes = {label: {1: _split_sign_sae(), 2: _split_sign_sae()} for label in stores}
    selection = split_experiments(n_experiments, seed=0)
    result = td_q_contrasts(stores, saes, targets, selection, n_boot=20, contrast_boot=200, seed=0)
    assert result.reward_r > 0.5  # the reward is most of the TD error, as in the task
    assert int(result.best.loc[("TD error, reward controlled", "trained", "SAE latent"), "layer"]) == 2
    for test in ("td_partial_latent_vs_untrained", "q_latent_vs_untrained", "q_pair_vs_untrained"):
        assert result.tests[test]["low"] > 0.2, test
    # the dimension carries the signed code whole, each latent half of it: the pair ties the dimension, a latent loses
    assert result.tests["td_partial_latent_vs_dimension"]["high"] < 0
    assert abs(result.tests["q_pair_vs_dimension"]["difference"]) < 0.05
    swapped = td_q_contrasts({"trained": stores["untrained"], "untrained": stores["trained"]}, saes, targets, selection,
                             n_boot=0, contrast_boot=200, seed=0)
    assert swapped.tests["q_latent_vs_untrained"]["high"] < -0.2
    with pytest.raises(ValueError, match="'trained' and 'untrained'"):
        td_q_contrasts({"a": stores["trained"]}, saes, targets, selection)
