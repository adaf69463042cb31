"""Lesion bookkeeping: matched controls, paired effects, the later-layer drop statistic."""

import numpy as np
import pandas as pd

from conftest import planted_targets

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


def _split_sign_layer_sae(d_in: int):
    """A real SAE whose latents are each dimension's positive and negative parts (latent i: +x_i, d_in + i: -x_i)."""
    from types import SimpleNamespace

    import torch

    from tdsae.sae import SAE, SAEConfig

    sae = SAE(SAEConfig(d_in=d_in, d_sae=2 * d_in), seed=0)
    with torch.no_grad():
        eye = torch.eye(d_in)
        sae.W_enc.copy_(torch.cat([eye, -eye], 1))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
        sae.W_dec.copy_(torch.cat([eye, -eye], 1).T)
    return SimpleNamespace(sae=sae)


class _Store:
    def __init__(self, acts):
        self.acts_by_layer = acts

    def acts(self, layer, rows=None):
        return self.acts_by_layer[layer] if rows is None else self.acts_by_layer[layer][np.asarray(rows)]


def test_edit_targets_are_the_planted_td_and_q_codes_at_editable_layers_with_distinct_controls():
    from tdsae.interventions import choose_edit_targets, edit_conditions
    from tdsae.latents import split_experiments

    rng = np.random.default_rng(0)
    n_experiments, per, d = 40, 30, 6
    n = n_experiments * per
    targets, surprise, q_diff = planted_targets(rng, n_experiments, per)
    layers = {layer: rng.normal(size=(n, d)) for layer in (1, 2, 3)}
    layers[1][:, 4] = q_diff + 0.3 * rng.normal(size=n)  # Q code at layer 1, dimension 4
    layers[2][:, 2] = surprise + 0.3 * rng.normal(size=n)  # TD code at layer 2, dimension 2
    layers[3][:, 0] = 3 * surprise + q_diff  # the last layer carries both, more strongly: not editable
    saes = {layer: _split_sign_layer_sae(d) for layer in layers}
    chosen = choose_edit_targets(_Store(layers), saes, targets, split_experiments(n_experiments, 0), n_layers=3, seed=0)
    assert chosen.layer == {"TD": 2, "Q": 1}
    assert chosen.latents["TD"][0] in (2, d + 2) and sorted(chosen.latents["Q"]) == [4, d + 4]  # +q and -q parts
    assert chosen.r_report["TD"] > 0.8 and chosen.r_report["Q"] > 0.9
    for name in ("TD", "Q"):
        assert not set(chosen.matched[name]) & set(chosen.latents[name])
        assert len(set(chosen.matched[name])) == len(chosen.matched[name])
    conditions = edit_conditions(saes, chosen, -20.0)
    assert conditions["unedited"] == [] and len(conditions) == 2 + 2 * 2 * 3
    assert conditions["Q: scale -20"][0].latents == chosen.latents["Q"]
    assert conditions["Q control: scale -20"][0].latents == chosen.matched["Q"]
