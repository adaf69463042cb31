"""Cached episodes: a PlayResult survives the round trip; the untrained control of a pretrained model."""

import numpy as np
import torch

import tdsae
from tdsae.artifacts import ArtifactStore
from tdsae.episodes import agent_trajectories, load_played, save_played, untrained_source
from tdsae.organism import OrganismConfig, build_organism, build_tokenizer
from tdsae.play import play_transcripts
from tdsae.tasks import get_task


def test_a_play_result_survives_save_and_load(tmp_path):
    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = build_organism(OrganismConfig(d_model=32, n_layers=1, n_heads=2, d_mlp=64), tokenizer).eval()
    played = play_transcripts(model, tokenizer, get_task("twostep"), 3, 2, seed=0, n_random_episodes=1)
    save_played(played, tmp_path)
    again = load_played(tmp_path)
    np.testing.assert_array_equal(again.choice_logprobs, played.choice_logprobs)
    np.testing.assert_array_equal(again.trajectory.reward, played.trajectory.reward)
    np.testing.assert_array_equal(again.trajectory.info["random_choice"], played.trajectory.info["random_choice"])
    assert again.tokens == played.tokens and again.trajectory.task == "twostep"


def test_untrained_control_of_a_pretrained_model_is_a_fresh_init_of_its_config(tmp_path):
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    build_organism(OrganismConfig(d_model=32, n_layers=1, n_heads=2, d_mlp=64), tokenizer).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    settings = tdsae.resolve_settings("small", model=str(tmp_path / "lm"))  # a "hub" model that is a local folder
    store = ArtifactStore(tmp_path / "cache")
    folder = untrained_source(settings, store)
    assert folder == untrained_source(settings, store)  # built once
    fresh = AutoModelForCausalLM.from_pretrained(folder)
    original = AutoModelForCausalLM.from_pretrained(tmp_path / "lm")
    assert fresh.config.hidden_size == original.config.hidden_size
    assert not torch.equal(fresh.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight)


def test_held_out_agents_are_seeded_and_have_their_own_parameters():
    settings = tdsae.resolve_settings("tiny", n_experiments=4, n_episodes=3, n_random_episodes=1)
    traj, alpha, beta = agent_trajectories(settings, "twostep")
    again, alpha_again, _ = agent_trajectories(settings, "twostep")
    np.testing.assert_array_equal(traj.action, again.action)
    np.testing.assert_array_equal(alpha, alpha_again)
    assert len(np.unique(alpha)) == 4 and traj.n_experiments == 4
