"""The SAELens v6 folder format: our folders load in SAELens and SAELens's in ours, with the same latents."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tdsae.sae import SAE, SAEConfig, load_sae, save_sae

D_IN, D_SAE, K = 24, 80, 6


def random_weights(sae, seed: int) -> None:
    """Give sae (ours or SAELens's) random weights with decoder rows of varied norms and non-zero biases."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(D_IN, D_SAE, generator=g) * 0.3)
        sae.W_dec.copy_(torch.randn(D_SAE, D_IN, generator=g) * (torch.rand(D_SAE, 1, generator=g) + 0.2))
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(D_IN, generator=g) * 0.2)


def ours(architecture: str) -> SAE:
    k = K if architecture == "topk" else None
    sae = SAE(SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture=architecture, k=k, hook_name="blocks.2.hook_resid_post",
                        hf_hook_name="model.layers.2", model_name="organism"))
    random_weights(sae, seed=1)
    return sae


def acts() -> torch.Tensor:
    return torch.randn(64, D_IN, generator=torch.Generator().manual_seed(9)) * 2


@pytest.mark.parametrize("architecture", ["standard", "topk"])
def test_our_folder_loads_in_saelens(architecture, tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    sae = ours(architecture)
    save_sae(sae, tmp_path / "sae")
    theirs = sae_lens.SAE.load_from_disk(tmp_path / "sae")
    assert type(theirs).__name__ == {"standard": "StandardSAE", "topk": "TopKSAE"}[architecture]
    assert theirs.cfg.metadata.hook_name == "blocks.2.hook_resid_post"
    assert theirs.cfg.metadata.hf_hook_name == "model.layers.2"
    x = acts()
    with torch.no_grad():
        torch.testing.assert_close(theirs.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-5, rtol=1e-5)
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    keys = ["d_in", "d_sae", "dtype", "device", "apply_b_dec_to_input", "normalize_activations", "reshape_activations",
            "metadata"] + (["k", "rescale_acts_by_decoder_norm"] if architecture == "topk" else []) + ["architecture"]
    assert list(cfg) == keys
    assert int(cfg["metadata"]["sae_lens_version"].split(".")[0]) >= 6


@pytest.mark.parametrize("architecture,rescale", [("standard", None), ("topk", False), ("topk", True)])
def test_saelens_folder_loads_in_ours(architecture, rescale, tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    if architecture == "standard":
        theirs = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    else:
        theirs = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K,
                                                         rescale_acts_by_decoder_norm=rescale))
    random_weights(theirs, seed=2)
    theirs.save_model(tmp_path / "theirs")
    sae = load_sae(tmp_path / "theirs")
    assert sae.cfg.architecture == architecture and sae.cfg.k == (K if architecture == "topk" else None)
    x = acts()
    with torch.no_grad():
        torch.testing.assert_close(sae.encode(x), theirs.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_saelens_trained_topk_inference_save_loads_in_ours(tmp_path):
    """A TopK training SAE saves its inference model with decoder norms folded into the encoder."""
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.TopKTrainingSAE(sae_lens.TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=K))
    random_weights(theirs, seed=3)
    theirs.save_inference_model(tmp_path / "theirs")
    sae = load_sae(tmp_path / "theirs")
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(D_SAE))
    with torch.no_grad():
        torch.testing.assert_close(sae(acts()), theirs(acts()), atol=1e-5, rtol=1e-5)


def test_round_trip_and_atomic_replace(tmp_path):
    sae = ours("topk")
    save_sae(sae, tmp_path / "sae")
    other = ours("standard")
    save_sae(other, tmp_path / "sae")  # replaces the folder
    loaded = load_sae(tmp_path / "sae", expected_d_in=D_IN)
    assert loaded.cfg == other.cfg
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        assert torch.equal(getattr(loaded, name), getattr(other, name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]  # no temporary folders left beside it


@pytest.fixture()
def folder(tmp_path):
    return save_sae(ours("standard"), tmp_path / "sae")


def edit_cfg(folder, **changes):
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg.update(changes)
    for key in [key for key, value in changes.items() if value is None]:
        del cfg[key]
    (folder / "cfg.json").write_text(json.dumps(cfg))


def test_missing_folder_and_files_name_the_path(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="SAE folder .*nowhere does not exist"):
        load_sae(tmp_path / "nowhere")
    (folder / "sae_weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="sae_weights.safetensors is missing"):
        load_sae(folder)
    (folder / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match="cfg.json is missing"):
        load_sae(folder)


def test_corrupt_cfg_names_file_and_field(folder):
    (folder / "cfg.json").write_text('{"d_in": 24, "d_sae": ')
    with pytest.raises(ValueError, match="cfg.json is not valid JSON"):
        load_sae(folder)


@pytest.mark.parametrize("changes,message", [
    ({"architecture": "gated"}, "cfg.json: field 'architecture' is 'gated'; tdsae loads standard, topk"),
    ({"d_sae": None}, "cfg.json: required field 'd_sae' is missing"),
    ({"architecture": "topk"}, "cfg.json: required field 'k' is missing"),
    ({"d_in": -3}, "cfg.json: d_in must be a positive int"),
    ({"dtype": "float8"}, "cfg.json: unknown dtype 'float8'"),
    ({"normalize_activations": "layer_norm"}, "cfg.json: field 'normalize_activations' is 'layer_norm'"),
])
def test_bad_cfg_fields_are_named(folder, changes, message):
    edit_cfg(folder, **changes)
    with pytest.raises(ValueError, match=message):
        load_sae(folder)


def test_wrong_shapes_name_tensor_and_expected_shape(folder):
    edit_cfg(folder, d_sae=D_SAE + 1)
    with pytest.raises(ValueError, match=r"tensor 'W_enc' has shape \(24, 80\), but d_in=24 and d_sae=81 in "
                                         r"cfg.json need \(24, 81\)"):
        load_sae(folder)


def test_missing_tensor_is_named(folder):
    tensors = load_file(folder / "sae_weights.safetensors")
    del tensors["b_dec"]
    save_file(tensors, folder / "sae_weights.safetensors")
    with pytest.raises(ValueError, match="sae_weights.safetensors: tensor 'b_dec' is missing"):
        load_sae(folder)


def test_width_mismatch_names_folder_and_both_widths(folder):
    with pytest.raises(ValueError, match=r"SAE .*sae reads d_in=24, but the activations it is applied to have "
                                         r"width 4096"):
        load_sae(folder, expected_d_in=4096)
