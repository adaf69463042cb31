"""Feature spaces of a micro population on the same transcripts: who reads what, and the comparison's ladder."""

import numpy as np
import torch
import pytest
from conftest import micro_population_settings

from tdsae.artifacts import ArtifactStore
from tdsae.presets import analysis_layers
from tdsae.latents import split_experiments
from tdsae.pipeline.universality import PAIRINGS, compare_feature_spaces, shared_readers, universality_study


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    root = tmp_path_factory.mktemp("universality")
    settings = micro_population_settings(n_experiments=40, sae_vectors=400, n_organisms=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TDSAE_HOME", str(root))
        readers = shared_readers(settings, "twostep", ArtifactStore(root))
    readers["root"] = root  # where they were cached: the study reads them back from there
    return settings, readers


def test_every_reader_reads_the_same_held_out_transcripts(readers):
    settings, found = readers
    found = {name: reader for name, reader in found.items() if name != "root"}
    assert set(found) == {"organism 0", "organism 1", "organism 0, SAE seed 1", "untrained"}
    index = found["organism 0"].store.index
    assert all(reader.store.index.equals(index) for reader in found.values())
    assert found["organism 0, SAE seed 1"].store is found["organism 0"].store  # same network, other SAEs
    first, second = found["organism 0"].saes[1].sae, found["organism 0, SAE seed 1"].saes[1].sae
    assert not np.allclose(first.W_dec.detach().numpy(), second.W_dec.detach().numpy())


def test_a_network_against_itself_pairs_perfectly_and_beats_its_null(readers):
    settings, found = readers
    selection = split_experiments(settings.n_experiments, settings.seed)
    same = compare_feature_spaces(found["organism 0"], found["organism 0"], 1, 1, selection, n_permutations=50)
    one = same.pairings.loc["one-to-one"]
    assert same.cka == pytest.approx(1.0) and one.share_above == pytest.approx(1.0, abs=0.05)
    assert one.rsa == pytest.approx(1.0) and one.rsa_p == pytest.approx(1 / 51)
    assert (same.partners.a == same.partners.b).all()  # every latent is its own partner
    live = int(same.partners.report.notna().sum())
    assert same.pairing_of(int(same.partners.a.iloc[0]), int(same.partners.a.iloc[0]))["matched"]
    other = compare_feature_spaces(found["organism 0"], found["organism 1"], 1, 1, selection, n_permutations=50)
    assert 0 <= other.cka < 1 and list(other.pairings.index) == list(PAIRINGS)
    above = other.pairings.loc["one-to-one, above threshold"]
    assert above.n_pairs <= other.pairings.loc["one-to-one", "n_pairs"] and live > 0
    with pytest.raises(ValueError, match="no SAE at layer 7"):
        compare_feature_spaces(found["organism 0"], found["organism 1"], 7, 1, selection)


def test_the_study_scores_the_identity_at_one_and_pairs_every_test_rung(readers):
    settings, found = readers
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TDSAE_HOME", str(found["root"]))
        study = universality_study(settings, "twostep", n_permutations=20, store=ArtifactStore(found["root"]))
    assert study.rungs["test"] == [("organism 0", "organism 1")]
    one = study.identity[study.identity.pairing == "one-to-one"]
    assert (one.rsa > 0.999).all() and (one.svcca_intended.dropna() > 0.999).all()
    assert set(study.diagonal.rung) == {"ceiling", "test", "floor"}
    assert len(study.grid) == len(found["organism 0"].saes) ** 2
    assert set(study.td_q.quantity) == {"TD error", "Q difference"}
    assert study.td_q.percentile.dropna().between(0, 1).all()


def test_a_pretrained_model_and_its_partner_are_compared_at_the_same_relative_depth(tmp_path, monkeypatch):
    """Two local 'hub' models sharing a tokenizer, of different depths: the ladder pairs the i-th analysis layer of
    each; the partner's SAEs train on its own play, and nothing reaches for the hub."""
    from conftest import story_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    import tdsae

    tokenizer = story_tokenizer()
    for name, depth, seed in (("lm", 2, 0), ("partner", 3, 1)):
        torch.manual_seed(seed)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=depth,
                             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096)
        LlamaForCausalLM(config).save_pretrained(tmp_path / name)
        tokenizer.save_pretrained(tmp_path / name)
    monkeypatch.setenv("TDSAE_HOME", str(tmp_path / "cache"))
    settings = tdsae.resolve_settings("small", model=str(tmp_path / "lm"), universality_partner=str(tmp_path / "partner"),
                                      n_experiments=8, n_episodes=4, n_random_episodes=1, device="cpu", sae_epochs=2,
                                      sae_expansion=2, sae_vectors=200, sae_min_explained_variance=0.0, sae_max_layers=2)
    study = universality_study(settings, "twostep", n_permutations=20, store=ArtifactStore(tmp_path / "cache"))
    lm, partner = str(tmp_path / "lm"), str(tmp_path / "partner")
    assert study.first == lm and study.rungs["test"] == [(lm, partner)]
    test = study.diagonal[(study.diagonal.rung == "test") & (study.diagonal.pairing == "one-to-one")]
    # the i-th analysis layer of each: all 2 of the first, 2 of the partner's 3 evenly spaced ending at the last
    assert list(zip(test.layer, test.layer_b)) == list(zip(analysis_layers(2, 2), analysis_layers(3, 2))) \
        == [(1, 1), (2, 3)]
    assert len(study.grid) == 4 and set(study.tracked.reader) == {lm, partner}
    with pytest.raises(ValueError, match="no universality_partner"):
        shared_readers(tdsae.resolve_settings("small", model=lm, universality_partner="", device="cpu"))


def test_universality_compares_a_partner_where_one_is_named_and_else_at_least_tiny_s_organisms():
    """At smol the one pretrained model has no partner: chapter 12 then compares organisms, and one organism
    alone would leave the test rung empty."""
    import dataclasses

    from tdsae.pipeline.universality import universality_settings
    from tdsae.presets import PRESETS

    tiny = PRESETS["tiny"]
    assert universality_settings(tiny) == tiny
    lone = dataclasses.replace(tiny, model="some/pretrained-model", n_organisms=1, universality_partner="")
    compared = universality_settings(lone)
    assert (compared.model, compared.n_organisms) == ("organism", tiny.n_organisms)
    paired = dataclasses.replace(lone, universality_partner="some/partner-model")
    assert universality_settings(paired) == paired
