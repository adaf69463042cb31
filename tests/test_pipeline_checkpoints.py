"""Chapter 11's pipeline on a micro organism: every checkpoint read on the finished organism's play, the final
checkpoint being chapters 5-7's own harvest and SAEs, two SAE seeds, and the study's tables."""

import numpy as np
import pytest
from conftest import micro_population_settings

from tdsae.artifacts import ArtifactStore
from tdsae.latents.concepts import LEVELS
from tdsae.pipeline import analysis_saes, harvested_store, model_source, untrained_source
from tdsae.pipeline.checkpoints import (EMERGENCE_TESTS, checkpoint_saes, checkpoint_sources, checkpoint_store,
                                       checkpoint_study)


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """A two-checkpoint organism (steps 0 and 11) with everything chapter 11 reads, in a private cache."""
    root = tmp_path_factory.mktemp("checkpoints")
    settings = micro_population_settings(n_experiments=8, sae_vectors=200, n_organisms=1)
    store = ArtifactStore(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TDSAE_HOME", str(root))
        study = checkpoint_study(settings, "twostep", n_sampled=5, n_agents=4, n_boot=20, n_edge=2, store=store)
    return settings, store, study, root


def test_checkpoints_run_from_the_untrained_control_to_the_finished_organism(micro, monkeypatch):
    settings, store, study, root = micro
    monkeypatch.setenv("TDSAE_HOME", str(root))
    sources = checkpoint_sources(settings)
    assert list(sources) == study.steps == [0, 10, 11]  # the default checkpoint steps below 11, then the final one
    assert sources[11] == model_source(settings) and sources[0] == untrained_source(settings)
    # the final checkpoint is the finished organism: chapters 5-7's own harvest and SAEs, not a copy of them
    assert checkpoint_store(settings, "twostep", 11, store).directory == harvested_store(settings, "twostep",
                                                                                        store=store).directory
    final_saes = checkpoint_saes(settings, "twostep", 11, store=store)[1]
    assert {l: e.folder for l, e in final_saes.items()} == {l: e.folder for l, e in
                                                          analysis_saes(settings, "twostep", store=store)[1].items()}
    # every checkpoint reads the same transcripts
    indexes = [checkpoint_store(settings, "twostep", step, store).index for step in study.steps]
    assert all(index.equals(indexes[0]) for index in indexes)
    with pytest.raises(ValueError, match="no checkpoint at step 5"):
        checkpoint_store(settings, "twostep", 5, store)


def test_a_second_sae_seed_trains_other_saes_on_the_same_rows(micro, monkeypatch):
    settings, store, study, root = micro
    monkeypatch.setenv("TDSAE_HOME", str(root))
    seeds = sorted(study.sae_metrics.sae_seed.unique())
    assert seeds == [settings.seed, settings.seed + 1]
    first, second = (checkpoint_saes(settings, "twostep", 11, seed, store)[1] for seed in seeds)
    layer = min(first)
    assert first[layer].folder != second[layer].folder
    assert not np.allclose(first[layer].sae.W_dec.detach().numpy(), second[layer].sae.W_dec.detach().numpy())
    assert first[layer].metrics["rows_trained"] == second[layer].metrics["rows_trained"]
    assert set(map(tuple, study.sae_metrics[["step", "sae_seed"]].drop_duplicates().to_numpy())) == {
        (step, seed) for step in study.steps for seed in seeds}


def test_the_study_compares_every_later_checkpoint_with_step_0(micro):
    _, _, study, _ = micro
    assert sorted(study.tests.step.unique()) == study.steps[1:]
    gains = study.latent_gains()
    assert (gains.loc[gains.step == 0, list(EMERGENCE_TESTS)] == 0).all().all()
    behaviour = study.behaviour.set_index("step")
    assert behaviour.loc[0, "r_gain"] == 0 and behaviour.loc[0, "r_low"] == 0  # step 0 against itself
    emergence = study.emergence()
    assert set(emergence.index) == {"imitation", "in-context learning", *EMERGENCE_TESTS}
    assert all(step is None or step in study.steps for step in emergence)
    assert study.rank(None) == len(study.steps) and study.rank(study.steps[1]) == 1
    chosen = study.selected_gain("TD-error latent")
    assert chosen.step in study.steps[1:] and chosen.test == EMERGENCE_TESTS["TD-error latent"]
    with pytest.raises(ValueError, match="single latent"):
        study.selected_gain("Q-value latent pair")


def test_the_study_explains_the_sampled_latents_and_traces_the_final_ones(micro):
    _, _, study, _ = micro
    layers = sorted(study.decoders)
    assert len(study.concepts) == 5 * len(layers) * len(study.steps)  # latents 0..4 of every layer and checkpoint
    assert set(study.concepts.level) <= set(LEVELS)
    shares = study.level_shares()
    assert list(shares.index) == study.steps and np.allclose(shares.sum(axis=1), 1)
    trace, ceiling = study.trace("Q difference (decision token)")
    assert trace.step.tolist() == study.steps[::-1] and trace.cosine_to_final.iloc[0] == pytest.approx(1.0)
    assert -1 <= ceiling <= 1
    assert set(study.nulls.step) == set(study.steps) and (study.nulls.n_report > 0).all()
