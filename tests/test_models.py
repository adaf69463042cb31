"""Loading models: local directories and hub ids through one function, clear errors, the residual stream."""

import pytest
import torch

from tdsae.models import (ModelNotFoundError, check_source, is_remote, load_model, model_dims, pick_dtype,
                          residual_layers, torch_module)
from tdsae.organism import OrganismConfig, build_organism, build_tokenizer
from tdsae.validation import looks_local


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A micro organism (untrained) saved with its tokenizer, and the in-memory original."""
    path = tmp_path_factory.mktemp("models") / "micro"
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = build_organism(OrganismConfig(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tokenizer).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model


def test_missing_local_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="no-such-model.*does not exist"):
        load_model(missing)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model("./models/organism")


def test_directory_without_config_is_named(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        load_model(tmp_path)


def test_uncached_hub_id_offline_names_the_id(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="'nobody/not-a-model-xyz' is not in the local"):
        load_model("nobody/not-a-model-xyz")


def test_local_and_hub_names_are_told_apart():
    assert looks_local("/abs/path") and looks_local("./rel") and looks_local("a/b/c")
    assert not looks_local("meta-llama/Llama-3.2-1B") and not looks_local("gpt2")


def test_load_model_wraps_in_nnsight_with_cpu_fp32(saved):
    from nnsight import TransformersModel

    path, model = saved
    assert check_source(str(path)) == "local"
    loaded = load_model(path, device="cpu")
    assert isinstance(loaded, TransformersModel) and not is_remote(loaded)
    assert next(torch_module(loaded).parameters()).dtype == torch.float32 == pick_dtype("cpu")
    assert model_dims(loaded) == (2, 32)
    assert len(residual_layers(loaded)) == 2
    ids = torch.tensor([[0, 105, 99, 103]])
    with torch.no_grad():
        torch.testing.assert_close(torch_module(loaded)(input_ids=ids).logits, model(input_ids=ids).logits,
                                   rtol=0, atol=0)


def test_weights_on_cuda_take_the_hardware_precision(monkeypatch):
    from tdsae import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(runtime.PRECISION_ENV, raising=False)
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(runtime, "cuda_facts", lambda native=native: ("a GPU", native))
        runtime._decide.cache_clear()
        assert pick_dtype("cuda") == dtype
    monkeypatch.setenv(runtime.PRECISION_ENV, "fp32")
    runtime._decide.cache_clear()
    assert pick_dtype("cuda") == torch.float32
    runtime._decide.cache_clear()


def test_residual_stream_is_a_plain_tensor_inside_a_trace(saved):
    import nnsight

    path, model = saved
    loaded = load_model(path, device="cpu")
    prompts = ["<bos> ts:start ts:X ts:planetX ts:D ts:D1", "<bos> ts:start ts:Y"]
    with loaded.trace(prompts):
        first = nnsight.save(residual_layers(loaded)[0].output)
        last = nnsight.save(residual_layers(loaded)[1].output)
        logits = nnsight.save(loaded.lm_head.output)
    assert isinstance(first, torch.Tensor) and not isinstance(first, tuple)
    assert first.shape == last.shape == (2, 6, 32)  # [batch, seq, d_model], left-padded
    ids = loaded.tokenizer(prompts[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        direct = model(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(logits[0], direct.logits[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(first[0], direct.hidden_states[1][0], rtol=1e-5, atol=1e-5)


def test_remote_needs_a_hub_id_and_an_api_key(saved, monkeypatch):
    from nnsight import CONFIG

    with pytest.raises(ValueError, match="hub id"):
        load_model(saved[0], remote=True)
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    monkeypatch.setattr("tdsae.models.check_source", lambda name: "hub")
    with pytest.raises(RuntimeError, match="NDIF API key"):
        load_model("meta-llama/Meta-Llama-3-70B", remote=True)
