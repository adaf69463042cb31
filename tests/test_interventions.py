"""Latent edits inside the forward pass: identity at factor 1, no effect for a silent latent, real effects otherwise."""

import numpy as np
import pytest
import torch
from conftest import saved_micro_organism

from tdsae.interventions.edits import LatentEdit, ce_loss_score, ce_loss_scores, play_with_edits, traced_output
from tdsae.models import torch_module
from tdsae.play import play_task
from tdsae.sae import SAE, SAEConfig
from tdsae.tasks import get_task


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    model = saved_micro_organism(tmp_path_factory.mktemp("edits") / "micro", n_layers=2)
    sae = SAE(SAEConfig(d_in=32, d_sae=64), seed=1)
    ids = torch.tensor([[model.tokenizer.get_vocab()[w] for w in
                         "<bos> ts:start ts:X ts:planetX ts:D ts:D1 ts:start ts:Y ts:planetY ts:J ts:J0".split()]])
    return model, sae, ids


def _logits(model, edits, ids):
    return traced_output(model, edits, input_ids=ids).logits


def test_factor_one_changes_the_logits_by_less_than_1e_5(micro):
    model, sae, ids = micro
    clean = torch_module(model)(input_ids=ids).logits.detach()
    edited = _logits(model, [LatentEdit(1, sae, list(range(64)), factor=1.0)], ids)
    assert (edited - clean).abs().max() < 1e-5


def test_lesioning_a_latent_that_never_fires_changes_nothing(micro):
    model, sae, ids = micro
    silent = SAE(SAEConfig(d_in=32, d_sae=64), seed=1)
    with torch.no_grad():
        silent.b_enc[5] = -1e6  # latent 5 can never be positive
    clean = torch_module(model)(input_ids=ids).logits.detach()
    assert (_logits(model, [LatentEdit(1, silent, [5], factor=0.0)], ids) - clean).abs().max() == 0
    assert (_logits(model, [LatentEdit(1, silent, [6], factor=-5.0)], ids) - clean).abs().max() > 1e-4


def test_an_edit_changes_exactly_the_edited_amount_at_its_layer(micro):
    import nnsight

    from tdsae.models import residual_sites

    model, sae, ids = micro
    edit = LatentEdit(1, sae, [3, 9], factor=-2.0)
    with torch.no_grad():
        with model.trace(input_ids=ids):
            before = nnsight.save(residual_sites(model)[1].output)
        latents = sae.encode(before)
        expected = before + (latents[..., [3, 9]] * -3.0) @ sae.W_dec[[3, 9]]  # (factor - 1) * z * W_dec
        with model.trace(input_ids=ids):
            residual_sites(model)[1].output = edit.apply(residual_sites(model)[1].output)
            after = nnsight.save(residual_sites(model)[1].output)
    torch.testing.assert_close(after, expected, atol=1e-4, rtol=1e-4)


def test_edited_play_without_edits_equals_play_and_bad_edits_are_refused(micro):
    model, sae, _ = micro
    task = get_task("twostep")
    plain = play_task(model, task, 4, 3, seed=2, n_random_episodes=1)
    same = play_with_edits(model, task, 4, 3, seed=2, n_random_episodes=1, edits=[])
    np.testing.assert_allclose(same.choice_logprobs, plain.choice_logprobs, atol=1e-6)
    with pytest.raises(ValueError, match=r"layer 9 is out of range"):
        play_with_edits(model, task, 2, 1, seed=0, edits=[LatentEdit(9, sae, [0])])
    wide = SAE(SAEConfig(d_in=48, d_sae=96), seed=0)
    with pytest.raises(ValueError, match=r"d_in=48.*d_model=32"):
        play_with_edits(model, task, 2, 1, seed=0, edits=[LatentEdit(1, wide, [0])])
    with pytest.raises(ValueError, match=r"latents \[64\] are not latent indices"):
        LatentEdit(1, sae, [64])


def test_ce_loss_score_is_one_for_a_perfect_reconstruction(micro):
    model, _, ids = micro
    identity = SAE(SAEConfig(d_in=32, d_sae=64, apply_b_dec_to_input=False), seed=0)
    with torch.no_grad():  # latents = ReLU(x) and ReLU(-x); decoder adds them back: an exact reconstruction
        identity.W_enc.zero_(); identity.W_dec.zero_(); identity.b_enc.zero_(); identity.b_dec.zero_()
        eye = torch.eye(32)
        identity.W_enc[:, :32], identity.W_enc[:, 32:] = eye, -eye
        identity.W_dec[:32], identity.W_dec[32:] = eye, -eye
    scores = ce_loss_score(model, identity, 1, ids.repeat(3, 1))
    assert abs(scores["ce_with_sae"] - scores["ce_clean"]) < 1e-5


# The score divides loss differences of ~0.02 between losses of ~4.7 (this random network), so the losses'
# float rounding across batch shapes and CPU kernels (~1e-7 relative; 1.5e-5 seen on the score under AVX2)
# is magnified ~250 times in it; the losses themselves are held to 1e-6.
_SCORE_REL = 1e-3


def test_ce_loss_score_read_a_sequence_at_a_time_is_the_score_of_one_pass(micro):
    """A long story's logits do not fit in memory many at a time: read in pieces, the losses are the same weighted
    means, padding and the scored positions included."""
    model, sae, ids = micro
    pad = model.tokenizer.pad_token_id
    batch = ids.repeat(3, 1)
    batch[1, -3:] = pad  # a shorter sequence, right-padded
    where = torch.zeros_like(batch, dtype=torch.bool)
    where[0, 2:6], where[1, 4:], where[2, ::2] = True, True, True  # a different number of scored tokens per row
    for positions in (None, where):
        whole = ce_loss_score(model, sae, 1, batch, pad, positions)
        pieces = ce_loss_score(model, sae, 1, batch, pad, positions, logit_bytes=1)  # one sequence a pass
        assert whole.keys() == pieces.keys()
        for name in whole:  # the score itself is NaN where this random network loses nothing to the zeroing
            assert pieces[name] == pytest.approx(whole[name], rel=_SCORE_REL if name == "ce_loss_score" else 1e-6,
                                                 nan_ok=True)
        assert all(np.isfinite(whole[name]) for name in ("ce_clean", "ce_with_sae", "ce_zero_ablation"))
    assert ce_loss_score(model, sae, 1, batch, pad, where)["ce_with_sae"] != \
        pytest.approx(ce_loss_score(model, sae, 1, batch, pad)["ce_with_sae"])  # the positions matter
    other = SAE(SAEConfig(d_in=32, d_sae=64), seed=7)
    both = ce_loss_scores(model, {1: sae, 2: other}, batch, pad, where, logit_bytes=1)  # one clean pass shared
    for layer, one in ((1, sae), (2, other)):
        alone = ce_loss_score(model, one, layer, batch, pad, where, logit_bytes=1)  # read alike
        for name in alone:
            assert both[layer][name] == pytest.approx(alone[name], rel=_SCORE_REL if name == "ce_loss_score" else 1e-6,
                                                      nan_ok=True)
    assert both[1]["ce_zero_ablation"] != pytest.approx(both[2]["ce_zero_ablation"])  # each layer its own ablation


def test_a_harvest_with_an_edit_moves_later_layers_only(micro, tmp_path):
    from tdsae.activations import harvest_activations

    model, sae, _ = micro
    played = play_task(model, get_task("twostep"), 3, 2, seed=0, n_random_episodes=1)
    clean = harvest_activations(model, played, tmp_path / "clean", progress=False)
    edit = LatentEdit(1, sae, list(range(64)), factor=-3.0)
    edited = harvest_activations(model, played, tmp_path / "edited", progress=False, edits=[edit])
    np.testing.assert_array_equal(edited.acts(0), clean.acts(0))
    assert np.abs(edited.acts(1) - clean.acts(1)).max() > 1e-3 and np.abs(edited.acts(2) - clean.acts(2)).max() > 1e-3
    identity = harvest_activations(model, played, tmp_path / "same", progress=False,
                                   edits=[LatentEdit(1, sae, list(range(64)), factor=1.0)])
    np.testing.assert_allclose(identity.acts(2), clean.acts(2), atol=1e-5)


def test_an_edit_restricted_to_positions_leaves_earlier_tokens_alone(micro):
    model, sae, ids = micro
    clean = torch_module(model)(input_ids=ids).logits.detach()
    positions = torch.zeros(ids.shape, dtype=torch.bool)
    positions[0, 6:] = True
    edited = _logits(model, [LatentEdit(1, sae, list(range(64)), factor=-3.0, positions=positions)], ids)
    assert (edited[0, :6] - clean[0, :6]).abs().max() == 0  # a causal model: tokens before 6 cannot see the edit
    assert (edited[0, 6:] - clean[0, 6:]).abs().max() > 1e-4
    spliced = _logits(model, [LatentEdit(1, sae, [], 1.0, keep_error=False, positions=positions)], ids)
    assert (spliced[0, :6] - clean[0, :6]).abs().max() == 0


def test_zero_ablating_a_head_removes_its_share_and_resampling_it_from_the_same_prompt_changes_nothing(tmp_path):
    """Zero-ablating one head removes exactly its share of o_proj's output; resampling a head from the very same
    prompt is no ablation; the effects table has one row per head."""
    from conftest import saved_micro_organism

    from tdsae.interventions.heads import ablate_heads, ablation_truths, head_inputs

    model = saved_micro_organism(tmp_path / "micro", n_layers=2)
    module = model._module
    ids = torch.randint(3, 20, (4, 6), generator=torch.Generator().manual_seed(1))
    positions, targets = torch.tensor([5, 4, 5, 3]), torch.tensor([3, 4, 5, 6])
    mask = torch.ones_like(ids)
    zero = ablate_heads(model, ids, mask, positions, targets, "zero")
    assert len(zero) == 2 * 2 and set(zero.columns) == {"layer", "head", "logp_drop", "kl"}
    assert (zero.kl >= -1e-6).all() and (zero.kl > 1e-6).any()
    # the same effect by hand: head 1 of layer 0 zeroed through its block of the output projection, at the tokens
    with torch.no_grad():
        clean = module(input_ids=ids).logits[torch.arange(4), positions].log_softmax(-1)
        weight = module.model.layers[0].self_attn.o_proj.weight
        saved = weight.clone()
        hook = module.model.layers[0].self_attn.o_proj.register_forward_pre_hook(
            lambda m, args: (torch.where((torch.arange(args[0].shape[1])[None, :, None] == positions[:, None, None])
                                         & (torch.arange(args[0].shape[2]) >= 16)[None, None, :], 0.0, args[0]),))
        ablated = module(input_ids=ids).logits[torch.arange(4), positions].log_softmax(-1)
        hook.remove()
        assert torch.equal(weight, saved)
    expected = float((clean - ablated)[torch.arange(4), targets].mean())
    row = zero[(zero.layer == 0) & (zero["head"] == 1)].iloc[0]
    assert abs(row.logp_drop - expected) < 1e-5
    same = head_inputs(model, ids, mask, positions)
    resampled = ablate_heads(model, ids, mask, positions, targets, "resample", reference=same)
    assert resampled.logp_drop.abs().max() < 1e-5 and resampled.kl.abs().max() < 1e-5
    cuts = ablation_truths(zero, fractions=(1.0, 1e-9))
    assert cuts[1.0].sum() == 1 and cuts[1.0][int(np.argmax(zero.logp_drop))]
    assert cuts[1e-9].sum() == (zero.logp_drop > 0).sum()  # every head that helps at all
    assert not ablation_truths(zero.assign(logp_drop=-1.0))[0.5].any()  # no head helps: an empty circuit


def test_attribution_patching_matches_small_resample_ablations_to_first_order(tmp_path):
    """For a counterpart whose z differs from the prompt's by a small step, the gradient estimate equals the
    resample ablation's measured effect to first order, head by head; a zero step estimates exactly zero."""
    from conftest import saved_micro_organism

    from tdsae.interventions.heads import ablate_heads, attribution_scores, head_inputs

    model = saved_micro_organism(tmp_path / "micro", n_layers=2)
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 20, (4, 6), generator=generator)
    positions, targets, mask = torch.tensor([5, 4, 5, 3]), torch.tensor([3, 4, 5, 6]), torch.ones_like(ids)
    same = head_inputs(model, ids, mask, positions)
    assert attribution_scores(model, ids, mask, positions, targets, same).logp_drop_estimate.abs().max() < 1e-7
    step = {layer: z + 1e-2 * torch.randn(z.shape, generator=generator) for layer, z in same.items()}
    measured = ablate_heads(model, ids, mask, positions, targets, "resample", reference=step).logp_drop.to_numpy()
    estimated = attribution_scores(model, ids, mask, positions, targets, step).logp_drop_estimate.to_numpy()
    assert np.abs(measured).max() > 1e-5  # the step does change the output
    assert np.abs(estimated - measured).max() < 0.05 * np.abs(measured).max()
    assert not any(p.grad is not None for p in model._module.parameters())  # no gradient left on the weights


def test_a_study_s_plays_are_cached_by_model_and_edit_and_a_stopped_one_resumes(micro, tmp_path, monkeypatch):
    """With a play cache, each (condition, seed) play is kept as it ends: called again after stopping in its third
    play, play_conditions plays only that one and gives the table of a run that never stopped. Another SAE, factor
    or model is another key."""
    import copy

    import pandas as pd

    import tdsae.interventions.experiments as experiments
    from tdsae.artifacts import ArtifactStore
    from tdsae.interventions import play_conditions

    model, sae, _ = micro
    task = get_task("twostep")
    conditions = {"unedited": [], "lesion": [LatentEdit(1, sae, [0, 1], 0.0)], "scale": [LatentEdit(1, sae, [0, 1], -5.0)]}
    cache = ArtifactStore(tmp_path / "cache")
    plays = []
    real = experiments.play_with_edits

    def stopped_in_the_third(*args):
        plays.append(args[6])
        if len(plays) == 3:
            raise KeyboardInterrupt("the session ended")
        return real(*args)

    monkeypatch.setattr(experiments, "play_with_edits", stopped_in_the_third)
    with pytest.raises(KeyboardInterrupt):
        play_conditions(model, task, conditions, 3, 4, [0], 1, 0.1, 0.99, progress=False, play_cache=cache)
    resumed = play_conditions(model, task, conditions, 3, 4, [0], 1, 0.1, 0.99, progress=False, play_cache=cache)
    assert len(plays) == 4 and plays[3][0].factor == -5.0  # only the stopped play again
    monkeypatch.setattr(experiments, "play_with_edits", real)
    fresh = play_conditions(model, task, conditions, 3, 4, [0], 1, 0.1, 0.99, progress=False)
    pd.testing.assert_frame_equal(resumed, fresh)

    keys = {experiments.edit_fingerprint(LatentEdit(1, sae, [0, 1], f))["factor"] for f in (0.0, -5.0)}
    assert keys == {0.0, -5.0}
    other = copy.deepcopy(sae)
    with torch.no_grad():
        other.W_enc[0, 0] += 1.0
    assert experiments.edit_fingerprint(LatentEdit(1, other, [0, 1], 0.0)) != \
        experiments.edit_fingerprint(LatentEdit(1, sae, [0, 1], 0.0))
    module = torch_module(model)
    before = experiments.weights_fingerprint(module)
    weight = next(module.parameters())
    kept = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(1.5)
    try:
        assert experiments.weights_fingerprint(module) != before
    finally:
        with torch.no_grad():
            weight.copy_(kept)
    assert experiments.weights_fingerprint(module) == before


def test_a_replay_kept_by_a_chapter_is_the_study_s_condition_and_is_played_once(micro, tmp_path, monkeypatch):
    """cached_play_with_edits and play_conditions share one key for the same play: a chapter's unedited replay
    serves a study's unedited condition, a lesion asked for twice plays once, and what comes back is the play."""
    import tdsae.interventions.experiments as experiments
    from tdsae.artifacts import ArtifactStore
    from tdsae.interventions import cached_play_with_edits, play_conditions

    model, sae, _ = micro
    task = get_task("twostep")
    cache = ArtifactStore(tmp_path / "cache")
    plays = []
    real = experiments.play_with_edits

    def counted(*args):
        plays.append(args[6])
        return real(*args)

    monkeypatch.setattr(experiments, "play_with_edits", counted)
    lesion = [LatentEdit(1, sae, [0, 1], 0.0)]
    unedited = cached_play_with_edits(model, task, 3, 4, 0, 1, [], play_cache=cache)
    kept = cached_play_with_edits(model, task, 3, 4, 0, 1, [], play_cache=cache)
    np.testing.assert_array_equal(kept.choice_logprobs, unedited.choice_logprobs)
    np.testing.assert_array_equal(kept.trajectory.action, unedited.trajectory.action)
    assert len(plays) == 1
    play_conditions(model, task, {"unedited": [], "lesion": lesion}, 3, 4, [0], 1, 0.1, 0.99, progress=False,
                    play_cache=cache)
    assert len(plays) == 2 and plays[1][0].factor == 0.0  # only the lesion was new
    again = cached_play_with_edits(model, task, 3, 4, 0, 1, lesion, play_cache=cache)
    monkeypatch.setattr(experiments, "play_with_edits", real)
    assert len(plays) == 2
    fresh = real(model, task, 3, 4, 0, 1, lesion)
    np.testing.assert_allclose(again.choice_logprobs, fresh.choice_logprobs, atol=1e-6)
    # the micro model's lesion moves log-probabilities by ~1e-4: far above float noise, so the kept play is the lesion's
    assert np.nanmax(np.abs(fresh.choice_logprobs - unedited.choice_logprobs)) > 1e-5


def test_later_layers_are_read_again_only_in_the_report_experiments_asked_for(micro, tmp_path):
    """later_layer_tracking reads again only the report-half experiments among those asked for, and every unit
    value it scores is the one a reading of all experiments gives at the same stored row."""
    from types import SimpleNamespace

    from tdsae.activations import harvest_activations
    from tdsae.interventions import later_layer_tracking
    from tdsae.latents.targets import reference_targets

    model, sae, _ = micro
    task = get_task("twostep")
    played = play_task(model, task, 6, 3, seed=0, n_random_episodes=1)
    store = harvest_activations(model, played, tmp_path / "clean", progress=False)
    targets = reference_targets(task, played.trajectory, store.index, 0.1, 0.99)
    selection = np.array([True, False, True, False, False, True])
    edits = {"scale": [LatentEdit(1, sae, list(range(64)), -3.0)]}
    unit = SimpleNamespace(column=lambda units: units[:, 3])  # a fixed residual dimension at layer 2
    choices = {("td_error", 2, False): unit, ("q_diff", 2, False): unit}
    reading = harvest_activations(model, played, tmp_path / "all", layers=[2], edits=edits["scale"], progress=False)
    for experiments, read in ((None, {1, 3, 4}), ([0, 1, 2, 3], {1, 3})):
        table, samples = later_layer_tracking(model, played, {2: SimpleNamespace(sae=None)}, edits, targets,
                                              selection, choices, tmp_path / f"tracking-{len(read)}",
                                              experiments=experiments)
        assert len(table) == 2
        for target in ("td_error", "q_diff"):
            x, y, scored = samples[("scale", target, 2)]
            rows = targets[targets[target].notna().to_numpy() & np.isin(targets.experiment, list(read))]
            assert set(scored) == read and len(x) == len(rows)
            expected = reading.acts(2, rows.row.to_numpy())[:, 3]
            np.testing.assert_allclose(x, expected - expected.mean(), atol=1e-5)
            np.testing.assert_allclose(y, rows[target] - rows[target].mean(), atol=1e-12)
    with pytest.raises(ValueError, match="no report-half experiment"):
        later_layer_tracking(model, played, {2: SimpleNamespace(sae=None)}, edits, targets, selection, choices,
                             tmp_path / "none", experiments=[0, 2])


def test_a_play_result_keeps_the_experiments_selected_in_order(micro):
    model, _, _ = micro
    played = play_task(model, get_task("twostep"), 4, 2, seed=0, n_random_episodes=1)
    picked = played.select([3, 1])
    np.testing.assert_array_equal(picked.trajectory.action, played.trajectory.action[[3, 1]])
    np.testing.assert_array_equal(picked.choice_logprobs, played.choice_logprobs[[3, 1]])
    np.testing.assert_array_equal(picked.outcome_pos, played.outcome_pos[[3, 1]])
    assert picked.tokens == [played.tokens[3], played.tokens[1]] and picked.prompts == played.prompts
    with pytest.raises(ValueError, match="0 .. 3"):
        played.select([4])
