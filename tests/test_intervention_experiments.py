"""Lesion bookkeeping: matched controls, paired effects, the later-layer drop statistic."""

import numpy as np
import pandas as pd

from tdsae.interventions.experiments import drop_difference, effects_against, matched_latents


def test_matched_latents_fire_about_as_often_and_never_repeat_a_target():
    frequency = np.array([0.5, 0.1, 0.11, 0.09, 0.5, 0.3, 0.31])
    picks = matched_latents(frequency, [1, 5], seed=0)
    assert picks[0] in (2, 3) and picks[1] == 6
    picks = matched_latents(frequency, [0, 4], seed=0)  # two targets at 0.5: the controls are the next closest
    assert set(picks).isdisjoint({0, 4}) and len(set(picks)) == 2


def test_effects_are_paired_by_seed_and_experiment():
    rng = np.random.default_rng(0)
    base = pd.DataFrame({"seed": np.repeat([0, 1], 50), "experiment": np.tile(np.arange(50), 2),
                         "reward": rng.normal(0.5, 0.3, 100)})
    shifted = base.assign(reward=base.reward - 0.01)  # a tiny effect hidden in a large spread across experiments
    table = pd.concat([base.assign(condition="none"), shifted.assign(condition="edit")])
    effect = effects_against(table, "none", measures=("reward",), n_boot=200).iloc[0]
    assert abs(effect.effect + 0.01) < 1e-12 and effect.high < 0  # pairing makes it exact and significant


def test_drop_difference_sees_an_edit_that_decorrelates_only_the_target_condition():
    rng = np.random.default_rng(1)
    experiments = np.repeat(np.arange(40), 20)
    y = rng.normal(size=len(experiments))
    tracked, noise = y + 0.3 * rng.normal(size=len(y)), rng.normal(size=len(y))
    samples = {}
    for condition, values in ((("target", 1.0), tracked), (("target", -5.0), noise),
                              (("control", 1.0), tracked), (("control", -5.0), tracked)):
        samples[(condition, "q", 3)] = (values, y, experiments)
    result = drop_difference(samples, "q", [3], (("target", 1.0), ("target", -5.0)),
                             (("control", 1.0), ("control", -5.0)), n_boot=200)
    assert result["difference"] > 0.8 and result["low"] > 0.7
