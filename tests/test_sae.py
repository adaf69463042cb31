"""tdsae.sae: an SAE recovers a planted sparse dictionary; the fast trainer keeps SAELens's loss and gradients."""

import dataclasses

import numpy as np
import pytest
import torch

from tdsae.sae import (SAE, SAEConfig, SAETrainingConfig, compute_gradients, latent_frequency, reconstruction_metrics,
                       train_sae, training_loss)

D_IN, N_ATOMS, D_SAE = 32, 64, 128
# beta 1 on normalised acts, lr 1e-3, 30 epochs of batch 64: every seed we tried recovers all 64 atoms
PLANTED = SAETrainingConfig(l1_coefficient=1.0, lr=1e-3, epochs=30, batch_size=64, seed=0)


def planted_acts(n: int, seed: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows, each a positive combination of 3 of 64 unit-norm atoms in 32 dims (the atoms fixed by seed 0)."""
    atoms = torch.randn(N_ATOMS, D_IN, generator=torch.Generator().manual_seed(0))
    atoms /= atoms.norm(dim=1, keepdim=True)
    g = torch.Generator().manual_seed(seed + 1)
    which = torch.rand(n, N_ATOMS, generator=g).argsort(dim=1)[:, :3]
    codes = torch.zeros(n, N_ATOMS).scatter_(1, which, torch.rand(n, 3, generator=g) + 0.5)
    return scale * codes @ atoms, atoms


def best_cosines(W_dec: torch.Tensor, atoms: torch.Tensor) -> torch.Tensor:
    """For each atom [N_ATOMS], the largest cosine with any decoder row."""
    W_dec = W_dec.detach().cpu()  # train_sae's device is "auto": on a GPU machine the SAE comes back on CUDA
    return (atoms @ (W_dec / W_dec.norm(dim=1, keepdim=True)).T).max(dim=1).values


@pytest.fixture(scope="module")
def planted():
    train, atoms = planted_acts(4000, seed=0)
    held_out, _ = planted_acts(1000, seed=1)
    return train, held_out, atoms


@pytest.fixture(scope="module")
def standard(planted):
    return train_sae(planted[0], SAEConfig(d_in=D_IN, d_sae=D_SAE), PLANTED, progress=False)


def test_standard_sae_recovers_planted_dictionary(planted, standard):
    _, held_out, atoms = planted
    found = best_cosines(standard.sae.W_dec.detach(), atoms)
    control = best_cosines(torch.randn(D_SAE, D_IN, generator=torch.Generator().manual_seed(5)), atoms)
    assert (found > 0.9).float().mean() >= 0.9
    assert (control > 0.9).float().mean() == 0 and control.median() < 0.6
    metrics = reconstruction_metrics(standard.sae, held_out)
    assert metrics["explained_variance"] > 0.85 and metrics["l0"] < 16  # 3 atoms per row, a few latents each


def test_topk_sae_recovers_planted_dictionary(planted):
    train, held_out, atoms = planted
    config = SAETrainingConfig(lr=3e-3, epochs=30, batch_size=64, seed=0, dead_steps=200)
    trained = train_sae(train, SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture="topk", k=3), config, progress=False)
    assert (best_cosines(trained.sae.W_dec.detach(), atoms) > 0.9).float().mean() >= 0.85
    metrics = reconstruction_metrics(trained.sae, held_out)
    assert metrics["l0"] <= 3 and metrics["explained_variance"] > 0.85
    assert "auxk_loss" in trained.log and trained.log["auxk_loss"].iloc[-1] >= 0


def test_trained_sae_is_folded_and_logged(standard):
    norms = standard.sae.W_dec.detach().cpu().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(D_SAE))
    log = standard.log
    assert list(log.columns) == ["step", "epoch", "seconds", "loss", "mse_loss", "l1_loss", "l0", "dead_latents"]
    assert log["step"].iloc[-1] == 30 * 63 and log["mse_loss"].iloc[-1] < log["mse_loss"].iloc[0]
    assert standard.sae.cfg.normalize_activations == "none"


@pytest.mark.parametrize("architecture,k,rescale", [("standard", None, None), ("topk", 4, True)])
def test_folding_keeps_outputs(architecture, k, rescale):
    config = SAEConfig(d_in=16, d_sae=48, architecture=architecture, k=k, rescale_acts_by_decoder_norm=rescale)
    sae = SAE(config, seed=3)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(48, 1, generator=torch.Generator().manual_seed(1)) * 4 + 0.2)
        sae.b_enc.uniform_(-0.1, 0.1)
        sae.b_dec.uniform_(-0.5, 0.5)
    x = torch.randn(50, 16)
    before, latents_before = sae(x), sae.encode(x)
    sae.fold_W_dec_norm()
    torch.testing.assert_close(sae(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(48))
    if architecture == "topk":  # the decoder-norm ranking makes topk latents themselves fold-invariant
        torch.testing.assert_close(sae.encode(x), latents_before, atol=1e-5, rtol=1e-5)


def test_topk_without_rescaling_refuses_to_fold():
    sae = SAE(SAEConfig(d_in=8, d_sae=16, architecture="topk", k=2, rescale_acts_by_decoder_norm=False))
    with pytest.raises(ValueError, match="rescale_acts_by_decoder_norm"):
        sae.fold_W_dec_norm()


def test_normalisation_is_folded_so_beta_carries_across_scales(planted, standard):
    """Training on acts * 50 gives the same SAE, acting on the raw (x50) activations."""
    train, held_out, _ = planted
    scaled = train_sae(train * 50, SAEConfig(d_in=D_IN, d_sae=D_SAE), PLANTED, progress=False)
    assert scaled.normalization_scale == pytest.approx(standard.normalization_scale / 50, rel=1e-5)
    big, small = reconstruction_metrics(scaled.sae, held_out * 50), reconstruction_metrics(standard.sae, held_out)
    assert big["explained_variance"] == pytest.approx(small["explained_variance"], abs=0.01)
    assert big["l0"] == pytest.approx(small["l0"], rel=0.05)
    assert big["mse"] == pytest.approx(small["mse"] * 2500, rel=0.05)


def test_training_is_deterministic_under_a_seed(planted):
    train = planted[0][:1000]
    config = SAETrainingConfig(l1_coefficient=1.0, lr=1e-3, epochs=3, batch_size=64, seed=7)
    first, second = (train_sae(train, SAEConfig(d_in=D_IN, d_sae=D_SAE), config, progress=False) for _ in range(2))
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(first.sae, name), getattr(second.sae, name)), name
    other = train_sae(train, SAEConfig(d_in=D_IN, d_sae=D_SAE), dataclasses.replace(config, seed=8), progress=False)
    assert not torch.equal(first.sae.W_dec, other.sae.W_dec)


def test_memmap_input_trains_like_a_tensor(planted, tmp_path):
    train = planted[0][:700]
    path = tmp_path / "acts.npy"
    np.save(path, train.numpy())
    config = SAETrainingConfig(l1_coefficient=1.0, lr=1e-3, epochs=2, batch_size=64, seed=1)
    from_file = train_sae(np.load(path, mmap_mode="r"), SAEConfig(d_in=D_IN, d_sae=D_SAE), config, progress=False)
    from_tensor = train_sae(train, SAEConfig(d_in=D_IN, d_sae=D_SAE), config, progress=False)
    assert torch.equal(from_file.sae.W_dec, from_tensor.sae.W_dec)


def test_bf16_training_reaches_fp32_quality(planted):
    """The same run with a bf16 encoder and in fp32 ends at the same MSE and L0 (bf16 forced: at these
    widths even an emulated bf16 matmul takes seconds, not minutes)."""
    train, held_out, atoms = planted
    runs = {bf16: train_sae(train, SAEConfig(d_in=D_IN, d_sae=D_SAE), dataclasses.replace(PLANTED, bf16=bf16),
                            progress=False) for bf16 in (True, False)}
    bf16, fp32 = (reconstruction_metrics(runs[key].sae, held_out) for key in (True, False))
    assert not torch.equal(runs[True].sae.W_dec, runs[False].sae.W_dec)  # the two runs did differ in precision
    assert bf16["mse"] == pytest.approx(fp32["mse"], rel=0.05)
    assert bf16["l0"] == pytest.approx(fp32["l0"], rel=0.05)
    assert (best_cosines(runs[True].sae.W_dec.detach(), atoms) > 0.9).float().mean() >= 0.9


def test_trainer_takes_the_hardware_precision(planted, monkeypatch):
    """bf16=None asks tdsae.runtime: fp32 where bf16 is not native (the encoder then never sees bf16), and
    TDSAE_PRECISION forces either way."""
    from tdsae import runtime
    from tdsae.sae.gradients import TrainingState

    sae = SAE(SAEConfig(d_in=D_IN, d_sae=D_SAE), seed=0)
    for native, env, expected in ((False, None, torch.float32), (True, None, torch.bfloat16),
                                  (True, "fp32", torch.float32), (False, "bf16", torch.bfloat16)):
        monkeypatch.setattr(runtime, "cpu_facts", lambda native=native: {
            "capability": "AVX512" if native else "AVX2", "bf16_flags": ["avx512_bf16"] if native else [],
            "features_known": True, "onednn_bf16": native, "machine": "x86_64"})
        if env is None:
            monkeypatch.delenv(runtime.PRECISION_ENV, raising=False)
        else:
            monkeypatch.setenv(runtime.PRECISION_ENV, env)
        runtime._decide.cache_clear()
        state = TrainingState(sae, dataclasses.replace(PLANTED, epochs=1), "cpu")
        assert state.compute_dtype == expected, (native, env)
        assert state.sparse_below == {torch.float32: 0.15, torch.bfloat16: 0.05}[expected]
    runtime._decide.cache_clear()


@pytest.mark.parametrize("architecture,k,sparse_below,n_dead,apply_b_dec", [
    ("standard", None, 1.0, 0, True),  # every batch through the sparse decoder
    ("standard", None, 0.0, 0, True),  # every batch through dense matmuls
    ("standard", None, 1.0, 0, False),
    ("topk", 6, None, 0, True),
    ("topk", 6, None, 40, True),  # more dead latents than AuxK takes (d_in // 2 = 12)
    ("topk", 6, None, 5, False),  # fewer: the fixed-size AuxK must mask the rest
])
def test_sparse_gradients_equal_dense_reference(architecture, k, sparse_below, n_dead, apply_b_dec):
    sae = SAE(SAEConfig(d_in=24, d_sae=96, architecture=architecture, k=k, apply_b_dec_to_input=apply_b_dec), seed=2)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(96, 1, generator=g) * 3 + 0.5)
        sae.b_enc.copy_(torch.randn(96, generator=g) * 0.05)
        sae.b_dec.copy_(torch.randn(24, generator=g) * 0.1)
    x = torch.randn(40, 24, generator=g)
    dead = torch.zeros(96, dtype=torch.bool)
    dead[torch.randperm(96, generator=g)[:n_dead]] = True
    dead = dead if architecture == "topk" else None
    config = SAETrainingConfig(l1_coefficient=0.05, aux_k_coefficient=0.7, bf16=False, sparse_below=sparse_below)
    grads, losses = compute_gradients(sae, x, config, dead_mask=dead)
    reference = training_loss(sae, x, config.l1_coefficient, config.aux_k_coefficient, dead_mask=dead)
    reference["loss"].backward()
    assert losses["loss"] == pytest.approx(float(reference["loss"].detach()), rel=1e-5)
    if n_dead:
        assert losses["sparsity_loss"] > 0
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(grads[name], getattr(sae, name).grad, atol=1e-5, rtol=1e-5, msg=name)


def test_a_step_is_clipped_adam_on_the_reference_loss(planted):
    """One step of train_sae equals torch's clip_grad_norm_ and Adam on training_loss (SAELens's SAETrainer step)."""
    x = planted[0][:64] * 5
    config = SAETrainingConfig(l1_coefficient=1.0, lr=1e-3, epochs=1, batch_size=64, bf16=False, normalize=False,
                               max_grad_norm=0.01)
    trained = train_sae(x, SAEConfig(d_in=D_IN, d_sae=D_SAE), config, device="cpu", progress=False)  # as the reference
    reference = SAE(SAEConfig(d_in=D_IN, d_sae=D_SAE), seed=config.seed)
    training_loss(reference, x, config.l1_coefficient)["loss"].backward()
    assert torch.nn.utils.clip_grad_norm_(reference.parameters(), config.max_grad_norm) > config.max_grad_norm
    torch.optim.Adam(reference.parameters(), lr=config.lr).step()
    reference.fold_W_dec_norm()
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        torch.testing.assert_close(getattr(trained.sae, name), getattr(reference, name), atol=1e-5, rtol=1e-4)


def test_a_batch_smaller_than_batch_size_is_one_step(planted):
    trained = train_sae(planted[0][:10], SAEConfig(d_in=D_IN, d_sae=D_SAE), SAETrainingConfig(epochs=2),
                        progress=False)
    assert trained.log["step"].iloc[-1] == 2


@pytest.mark.parametrize("kwargs,message", [
    ({"architecture": "gated"}, "unknown SAE architecture 'gated'; choose one of: standard, topk"),
    ({"d_sae": 0}, "d_sae must be a positive int"),
    ({"d_in": 12.5}, "d_in must be a positive int"),
    ({"architecture": "topk", "k": 200}, r"k=200 does not fit d_sae=128"),
    ({"architecture": "topk"}, r"k=None does not fit d_sae=128"),
    ({"k": 4}, "only used by the topk architecture"),
    ({"normalize_activations": "layer_norm"}, "normalize_activations='layer_norm' is not supported"),
])
def test_bad_configs_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAEConfig(**{"d_in": D_IN, "d_sae": D_SAE, **kwargs})


@pytest.mark.parametrize("kwargs,message", [({"batch_size": 0}, "batch_size must be a positive int, got 0"),
                                            ({"epochs": 1.5}, "epochs must be a positive int"),
                                            ({"lr": 0.0}, "lr must be a finite number > 0")])
def test_bad_training_configs_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SAETrainingConfig(**kwargs)


def test_bad_activations_are_clear_errors(planted):
    train = planted[0][:100]
    config = SAEConfig(d_in=D_IN, d_sae=D_SAE)
    with pytest.raises(ValueError, match=r"width 31 but the SAE config has d_in=32"):
        train_sae(train[:, :31], config, progress=False)
    for bad in (float("nan"), float("inf")):
        broken = train.clone()
        broken[17, 3] = bad
        with pytest.raises(ValueError, match="NaN or inf \\(first at row 17\\)"):
            train_sae(broken, config, progress=False)
    with pytest.raises(ValueError, match="no rows"):
        train_sae(train[:0], config, progress=False)
    with pytest.raises(ValueError, match="width 31 but the SAE reads d_in=32"):
        SAE(config).encode(train[:, :31])


def test_metrics_match_their_definitions():
    """An SAE with W_enc = [I, -I] reconstructs exactly; a random one matches a numpy computation."""
    d = 6
    exact = SAE(SAEConfig(d_in=d, d_sae=2 * d, apply_b_dec_to_input=False))
    with torch.no_grad():
        exact.W_enc.copy_(torch.cat([torch.eye(d), -torch.eye(d)], dim=1))
        exact.W_dec.copy_(torch.cat([torch.eye(d), -torch.eye(d)], dim=0))
        exact.b_enc.zero_()
        exact.b_dec.zero_()
    x = torch.randn(300, d, generator=torch.Generator().manual_seed(0)) + 2.0
    metrics = reconstruction_metrics(exact, x, batch_size=64)
    assert metrics["mse"] < 1e-10 and metrics["explained_variance"] == pytest.approx(1.0)
    assert metrics["l0"] == pytest.approx(float((x != 0).sum(1).float().mean()))
    random = SAE(SAEConfig(d_in=d, d_sae=20), seed=1)
    with torch.no_grad():
        random.b_enc.fill_(-0.3)
        recon, latents = random(x).numpy(), random.encode(x).numpy()
    xs = x.numpy().astype(np.float64)
    metrics = reconstruction_metrics(random, x, batch_size=64)
    assert metrics["mse"] == pytest.approx(((recon - xs) ** 2).sum(1).mean(), rel=1e-5)
    explained = 1 - ((recon - xs) ** 2).sum() / ((xs - xs.mean(0)) ** 2).sum()
    assert metrics["explained_variance"] == pytest.approx(explained, rel=1e-5)
    assert metrics["frac_alive"] == pytest.approx((latents != 0).any(0).mean())
    frequency = latent_frequency(random, x, batch_size=64)
    assert frequency.shape == (20,) and float(frequency.sum()) == pytest.approx(metrics["l0"], rel=1e-6)


def test_centering_recovers_the_dictionary_under_a_large_constant_offset(planted):
    train, held_out, atoms = planted
    offset = 40 * torch.randn(D_IN, generator=torch.Generator().manual_seed(5))  # like a residual stream's massive mean
    plain = train_sae(train + offset, SAEConfig(d_in=D_IN, d_sae=D_SAE), PLANTED, progress=False)
    centred = train_sae(train + offset, SAEConfig(d_in=D_IN, d_sae=D_SAE), dataclasses.replace(PLANTED, center=True),
                        progress=False)
    quality = {name: reconstruction_metrics(run.sae, held_out + offset)["explained_variance"]
               for name, run in (("plain", plain), ("centred", centred))}
    assert quality["centred"] > 0.9 > quality["plain"]  # the raw-norm scale drowns the signal in the offset
    assert (best_cosines(centred.sae.W_dec, atoms) > 0.9).float().mean() >= 0.9
    torch.testing.assert_close(centred.sae.b_dec.detach().cpu() - offset, torch.zeros(D_IN), atol=2.0, rtol=0)
