"""The bad-input table: every public entry point x every bad value it takes.

Each row calls one entry point with one bad value and asserts three things: the error's type, that
its message names the bad value, and that it came within LIMIT_S seconds. Long work is made to
raise if it starts (the artifact cache's builds, the players, the SAE's gradient step, the
organism's batches, from_pretrained), so "before any long work" is tested, not assumed; and the
artifact cache, pointed at an empty folder, must still be empty afterwards (nothing half-written).

A new public entry point joins this table (docs/architecture.md says so to contributors).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import saved_micro_organism, story_tokenizer

import tdsae
from tdsae import artifacts as tdsae_artifacts, cli
from tdsae.activations import ActivationStore, harvest_activations, max_difference_from_forward, store_played_residuals
from tdsae.agents import QLearner, get_agent
from tdsae.behaviour import next_node_prediction, stay_probabilities
from tdsae.behaviour.estimation import fit_model
from tdsae.claims import ClaimBook
from tdsae.interventions import (EditedModel, EditTargets, LatentEdit, behaviour_of, ce_loss_score, ce_loss_scores, choose_edit_targets,
                                 drop_difference, edit_conditions, effects_against, intervention_study,
                                 later_layer_tracking, matched_latents, play_conditions, play_with_edits, traced_output,
                                 cached_play_with_edits)
from tdsae.latents import (best_unit, community_contrasts, panel_rows, sr_contrasts, td_q_contrasts, compare_best, mds_coordinates, probe_score, profile, reference_sweep,
                           reference_targets, shuffled_target, split_experiments, sr_targets, unit_profile, units_at,
                           units_of)
from tdsae.models import (ModelNotFoundError, ResidualTap, check_layer, convert_gguf, load_model, next_token_table,
                          site_hook_names, source_layers, torch_module)
from tdsae.latents.concepts import context_designs, explained_shares, reward_history
from tdsae.latents.matching import cosine_matrix, match_one_to_one, settled_step, trace_back
from tdsae.latents.similarity import (latent_correlations, linear_cka, pair_latents, permutation_null,
                                      principal_components_kept, rsa, rsa_null, svcca, svcca_null)
from tdsae.organism import (ChoiceComparison, OrganismConfig, TrainingConfig, TranscriptRecipe, build_batches,
                            compare_choices, evaluate_choice_correlation, in_context_score, list_checkpoints,
                            r_difference, simulate_transcripts, train_organism)
from tdsae.organism.corpus import seed_for
from tdsae.pipeline import (AGENTS, agent_trajectories, analysis_saes, chosen_l1, episodes_for, harvest_params,
                            harvested_store, model_folder,
                            l1_sweep, layer_saes, load_preset_model, model_source, organism_seed, played_episodes,
                            population, trained_and_untrained, trained_organism, trained_population,
                            training_rows, untrained_source)
from tdsae.pipeline.checkpoints import checkpoint_saes, checkpoint_sources, checkpoint_store, checkpoint_study
from tdsae.pipeline.organisms import organism_settings
from tdsae.activations import head_results
from tdsae.interventions.heads import ablate_heads, ablation_truths, attribution_scores, head_inputs
from tdsae.circuits import minimal_pairs
from tdsae.circuits.ioi import ioi_pairs
from tdsae.pipeline.circuits import circuit_study, ioi_study
from tdsae.circuits import (discrete_codes, edge_scores, edge_votes, mean_difference_scores, node_scores,
                            random_codes, ranking_scores, train_code_sae)
from tdsae.pipeline.universality import compare_feature_spaces, shared_readers, universality_study
from tdsae.play.dispatch import play_task, read_choices
from tdsae.play.stories import StoryTokens, join_residuals, play_stories
from tdsae.play.result import load_played, load_residuals
from tdsae.sae import (SAE, SAEConfig, SAETrainingConfig, choose_l1, load_sae, reconstruction_metrics, save_sae,
                       train_sae)
from tdsae.stats import bootstrap_interval, emergence_step
from tdsae.tasks import check_piece, get_task, render_story_prompt, run_agent

LIMIT_S = 5.0
ROOT = Path(__file__).resolve().parents[1]
NAN = float("nan")


class LongWorkStarted(AssertionError):
    """Raised by anything long that a bad-input call reached: the call checked too late."""


class CommandFailed(Exception):
    """A CLI call that returned a non-zero status; the message is what it printed on stderr."""


def refuse(*_, **__):
    raise LongWorkStarted("long work started before the bad input was refused")


def cli_call(*argv: str) -> None:
    """Run the tdsae command; raise CommandFailed with its stderr when it fails (argparse's exits too)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = cli.main(list(argv))
        except SystemExit as exit_:
            status = exit_.code
    if status:
        raise CommandFailed(err.getvalue())


class SlowTokenizer:
    """Stands in for a tokenizer without character offsets (a Python "slow" tokenizer)."""

    is_fast = False


def slow_tokenizer() -> SlowTokenizer:
    return SlowTokenizer()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Real objects the rows need: a micro organism and its SAE, a small store, bad model folders."""
    root = tmp_path_factory.mktemp("bad-input")
    model = saved_micro_organism(root / "micro", n_layers=2)
    sae = SAE(SAEConfig(d_in=32, d_sae=64), seed=0)
    task = get_task("twostep")
    played = play_task(model, task, 2, 2, seed=0)
    store = harvest_activations(model, played, root / "store", progress=False)
    save_sae(sae, root / "sae")
    nan_sae = root / "nan-sae"
    save_sae(sae, nan_sae)
    from safetensors.torch import load_file, save_file

    tensors = load_file(nan_sae / "sae_weights.safetensors")
    tensors["W_enc"][0, 0] = NAN
    save_file(tensors, nan_sae / "sae_weights.safetensors")
    folders = {}
    for name, config in {"bert": {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 32},
                         "bert_bare": {"model_type": "bert", "hidden_size": 32},
                         "t5": {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"],
                                "is_encoder_decoder": True}}.items():
            (root / name).mkdir()
            (root / name / "config.json").write_text(json.dumps(config))
            folders[name] = root / name
    (root / "corrupt").mkdir()
    (root / "corrupt" / "config.json").write_text("{not json")
    (root / "broken.gguf").write_bytes(b"this is not a gguf file")
    (root / "model.gguf").write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(64))
    targets = pd.DataFrame({"row": np.arange(4), "experiment": [0, 0, 1, 1], "td_error": np.linspace(-1, 1, 4)})
    return SimpleNamespace(root=root, model=model, sae=sae, task=task, played=played, store=store,
                           settings=tdsae.resolve_settings("tiny"), ids=torch.tensor([[0, 5, 6, 7]]),
                           sae_dir=root / "sae", nan_sae=nan_sae, corrupt=root / "corrupt",
                           broken_gguf=root / "broken.gguf", gguf=root / "model.gguf", targets=targets,
                           chosen=EditTargets({"TD": 1, "Q": 1}, {"TD": [0], "Q": [1, 2]}, {"TD": [3], "Q": [4, 5]},
                                              {}, {}), **folders)


@pytest.fixture
def ctx(world, monkeypatch, tmp_path):
    """world, with long work made to raise, the artifact cache in an empty folder, and monkeypatch at hand."""
    import nnsight

    cache = tmp_path / "cache"
    monkeypatch.setenv("TDSAE_HOME", str(cache))
    for target in ("tdsae.artifacts.ArtifactStore.load_or_build", "tdsae.play.dispatch.play_transcripts",
                   "tdsae.play.dispatch.play_stories", "tdsae.sae.training.gradient_step",
                   "tdsae.organism.trainer.build_batches", "tdsae.book.execute_chapter"):
        monkeypatch.setattr(target, refuse)
    monkeypatch.setattr(nnsight, "TransformersModel", refuse)  # load_model's from_pretrained
    yield SimpleNamespace(**vars(world), monkeypatch=monkeypatch, cache=cache)
    leftovers = list(cache.rglob("*")) if cache.exists() else []
    assert leftovers == [], f"a refused call left files in the artifact cache: {leftovers[:5]}"


def hub_unreachable(c, value):
    """value, with the hub online but not answering from now on (a closed local port stands in for it)."""
    from huggingface_hub import constants

    c.monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    c.monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return value


def hub_offline(c, name: str):
    from huggingface_hub import constants

    c.monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return load_model(name)


def without_module(c, module: str, *argv: str):
    """The tdsae command as it runs where ``module`` is not installed."""
    real = importlib.util.find_spec
    c.monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    return cli_call(*argv)


def negative_layer_edit(c, layer: int):
    """An edit object that skips LatentEdit's own check, so that traced_output's is what is tested."""
    return traced_output(c.model, [SimpleNamespace(layer=layer, sae=c.sae, apply=lambda h: h)], input_ids=c.ids)


V = ValueError
M = ModelNotFoundError
C = CommandFailed


def flat_comparison():
    """A ChoiceComparison of two decisions of two held-out agents (r_difference's input)."""
    half = np.full((2, 2), 0.5)
    return ChoiceComparison("twostep", 0.0, half, half, np.zeros(2, int), np.arange(2))


def row(entry: str, value: str, call, error, named: str | None = None):
    """One row: entry point, the bad value (as the test id), call(ctx), expected error, text the message
    must contain (default: the bad value itself)."""
    return pytest.param(call, error, lambda c: value if named is None else named, id=f"{entry}[{value}]")


def path_row(entry: str, label: str, call, error, attribute: str):
    """A row whose bad value is one of world's paths (ctx.<attribute>): the message must name that path."""
    return pytest.param(call, error, lambda c: str(getattr(c, attribute)), id=f"{entry}[{label}]")


ROWS = [
    # the front door: presets, knobs, the model source, chapters
    row("resolve_settings", "'huge'", lambda c: tdsae.resolve_settings("huge"), V),
    row("resolve_settings", "seed=-1", lambda c: tdsae.resolve_settings("tiny", seed=-1), V, "-1"),
    row("resolve_settings", "seed=1.5", lambda c: tdsae.resolve_settings("tiny", seed=1.5), V, "1.5"),
    row("resolve_settings", "n_episodes=0", lambda c: tdsae.resolve_settings("tiny", n_episodes=0), V, "0"),
    row("resolve_settings", "n_random_episodes=30", lambda c: tdsae.resolve_settings("tiny", n_random_episodes=30),
        V, "30"),
    row("resolve_settings", "sae_l1=nan", lambda c: tdsae.resolve_settings("tiny", sae_l1=NAN), V, "nan"),
    row("resolve_settings", "sae_lr='1e-4'", lambda c: tdsae.resolve_settings("tiny", sae_lr="1e-4"), V, "'1e-4'"),
    row("resolve_settings", "device='tpu'", lambda c: tdsae.resolve_settings("tiny", device="tpu"), V, "'tpu'"),
    row("resolve_settings", "organism=3 of 3", lambda c: tdsae.resolve_settings("tiny", organism=3), V, "3"),
    row("resolve_settings", "n_organisms=0", lambda c: tdsae.resolve_settings("tiny", n_organisms=0), V, "0"),
    row("resolve_settings", "n_epochs", lambda c: tdsae.resolve_settings("tiny", n_epochs=3), V, "'n_epochs'"),
    row("resolve_settings", "model=''", lambda c: tdsae.resolve_settings("tiny", model=""), V, "''"),
    row("resolve_settings", "model='organsim'", lambda c: tdsae.resolve_settings("tiny", model="organsim"), V,
        "'organsim'"),
    row("resolve_settings", "missing folder", lambda c: tdsae.resolve_settings("tiny", model="/no/such/model"), M,
        "/no/such/model"),
    path_row("resolve_settings", "BERT folder", lambda c: tdsae.resolve_settings("tiny", model=str(c.bert)), V, "bert"),
    path_row("resolve_settings", "BERT config without architectures",
             lambda c: tdsae.resolve_settings("tiny", model=str(c.bert_bare)), V, "bert_bare"),
    path_row("resolve_settings", "T5 folder", lambda c: tdsae.resolve_settings("tiny", model=str(c.t5)), V, "t5"),
    path_row("resolve_settings", "corrupt config.json", lambda c: tdsae.resolve_settings("tiny", model=str(c.corrupt)),
             M, "corrupt"),
    path_row("resolve_settings", "unreadable GGUF", lambda c: tdsae.resolve_settings("tiny", model=str(c.broken_gguf)),
             M, "broken_gguf"),
    row("resolve_settings", "lm_model='organism'", lambda c: tdsae.resolve_settings("tiny", lm_model="organism"), V,
        "'organism'"),
    row("resolve_settings", "lm_model missing folder", lambda c: tdsae.resolve_settings("tiny", lm_model="/no/such/lm"),
        M, "/no/such/lm"),
    row("resolve_settings", "universality_partner='organism'",
        lambda c: tdsae.resolve_settings("tiny", universality_partner="organism"), V, "'organism'"),
    row("resolve_settings", "universality_partner missing folder",
        lambda c: tdsae.resolve_settings("tiny", universality_partner="/no/such/partner"), M, "/no/such/partner"),
    row("resolve_settings", "universality_partner=3", lambda c: tdsae.resolve_settings("tiny", universality_partner=3),
        V, "3"),
    row("resolve_settings", "lm_experiments=0", lambda c: tdsae.resolve_settings("tiny", lm_experiments=0), V, "0"),
    row("resolve_settings", "edit_experiments=101 of 100",
        lambda c: tdsae.resolve_settings("tiny", edit_experiments=101), V, "101"),
    row("resolve_settings", "edit_experiments=0", lambda c: tdsae.resolve_settings("tiny", edit_experiments=0), V, "0"),
    row("PlayResult.select", "experiment 7 of 2", lambda c: c.played.select([7]), V, "7"),
    row("PlayResult.select", "no experiments", lambda c: c.played.select([]), V, "[]"),
    row("resolve_settings", "sae_max_layers=0", lambda c: tdsae.resolve_settings("tiny", sae_max_layers=0), V, "0"),
    row("pretrained_settings", "a preset name", lambda c: tdsae.pipeline.pretrained_settings("tiny"), V, "'tiny'"),
    row("get_preset", "'huge'", lambda c: tdsae.get_preset("huge"), V),
    row("setup_chapter", "preset 'huge'", lambda c: tdsae.setup_chapter("07_x", "huge"), V, "'huge'"),
    row("setup_chapter", "chapter ''", lambda c: tdsae.setup_chapter("", "tiny"), V, "''"),
    row("setup_chapter", "seed=-3", lambda c: tdsae.setup_chapter("07_x", "tiny", seed=-3), V, "-3"),
    # models: the door to weights
    path_row("load_model", "BERT folder", lambda c: load_model(c.bert), V, "bert"),
    row("load_model", "missing folder", lambda c: load_model("/no/such/model"), M, "/no/such/model"),
    row("load_model", "hub id, offline", lambda c: hub_offline(c, "nobody/not-a-model-xyz"), M,
        "'nobody/not-a-model-xyz'"),
    row("load_model", "hub id, hub unreachable", lambda c: load_model(hub_unreachable(c, "nobody/not-a-model-xyz")), M,
        "'nobody/not-a-model-xyz'"),
    path_row("load_model", "unreadable GGUF", lambda c: load_model(c.broken_gguf), M, "broken_gguf"),
    path_row("load_model", "GGUF file, not yet a folder", lambda c: load_model(c.gguf), M, "gguf"),
    path_row("model_folder", "unreadable GGUF", lambda c: model_folder(c.broken_gguf),
             M, "broken_gguf"),
    path_row("model_folder", "GGUF header, no contents", lambda c: model_folder(c.gguf),
             M, "gguf"),
    row("model_folder", "missing folder", lambda c: model_folder("/no/such/model"), M,
        "/no/such/model"),
    path_row("convert_gguf", "unreadable GGUF", lambda c: convert_gguf(c.broken_gguf, c.root / "out"), M,
             "broken_gguf"),
    row("load_model", "device='tpu'", lambda c: load_model(c.root / "micro", device="tpu"), V, "'tpu'"),
    path_row("load_model", "remote with a folder", lambda c: load_model(c.root / "micro", remote=True), V, "root"),
    path_row("source_layers", "T5 folder", lambda c: source_layers(c.t5), V, "t5"),
    row("check_layer", "99", lambda c: check_layer(c.model, 99), V),
    row("check_layer", "-1", lambda c: check_layer(c.model, -1), V),
    row("check_layer", "1.5", lambda c: check_layer(c.model, 1.5), V),
    row("check_layer", "True", lambda c: check_layer(c.model, True), V),
    row("site_hook_names", "3", lambda c: site_hook_names(c.model, 3), V),
    # tasks and agents
    row("get_task", "'three-step'", lambda c: get_task("three-step"), V),
    row("run_agent", "n_random_episodes=3 of 3", lambda c: run_agent(c.task, QLearner(), 2, 3, 0, n_random_episodes=3),
        V, "3"),
    row("run_agent", "seed=-1", lambda c: run_agent(c.task, QLearner(), 2, 3, -1), V, "-1"),
    row("run_agent", "n_episodes=0", lambda c: run_agent(c.task, QLearner(), 2, 0, 0), V, "0"),
    row("run_agent", "n_experiments=0", lambda c: run_agent(c.task, QLearner(), 0, 3, 0), V, "0"),
    row("fit_model", "seed=-1", lambda c: fit_model(c.task, c.played.trajectory, "qlearning", 0, seed=-1), V, "-1"),
    row("fit_model", "n_restarts=-2",
        lambda c: fit_model(c.task, c.played.trajectory, "qlearning", 0, n_restarts=-2), V, "-2"),
    row("fit_model", "'q-lerning'", lambda c: fit_model(c.task, c.played.trajectory, "q-lerning", 0), V),
    # play
    row("play_task", "n_random_episodes=3 of 3", lambda c: play_task(c.model, c.task, 2, 3, 0, 3), V, "3"),
    row("play_task", "seed=-1", lambda c: play_task(c.model, c.task, 2, 3, -1), V, "-1"),
    row("render_story_prompt", "column 99", lambda c: render_story_prompt(c.played.trajectory, 0, 99, c.task), V, "99"),
    row("check_piece", "two newlines at the end", lambda c: check_piece("junk.\n\n"), V, "'junk.\\n\\n'"),
    row("StoryTokens", "a slow tokenizer", lambda c: StoryTokens(slow_tokenizer()), V, "SlowTokenizer"),
    row("play_stories", "a choice of two tokens",
        lambda c: play_stories(c.model, story_tokenizer(drop=" X"), c.task, 2, 1, seed=0), V, "' X'"),
    row("play_stories", "residual_layers=[99]", lambda c: play_stories(torch_module(c.model), story_tokenizer(), c.task, 2,
                                                                        1, seed=0, residual_layers=[99]), V, "99"),
    row("play_stories", "residual_layers without the cache",
        lambda c: play_stories(torch_module(c.model), story_tokenizer(), c.task, 2, 1, seed=0, residual_layers=[0],
                               use_cache=False), V, "use_cache"),
    row("play_task", "residual_layers for a transcript reader",
        lambda c: play_task(c.model, c.task, 2, 3, 0, residual_layers=[0]), V, "residual_layers"),
    row("r_difference", "n_boot=-1", lambda c: r_difference(flat_comparison(), flat_comparison(), n_boot=-1), V, "-1"),
    row("r_difference", "seed=-1", lambda c: r_difference(flat_comparison(), flat_comparison(), seed=-1), V, "-1"),
    row("read_choices", "task 'twostep'", lambda c: read_choices(c.model, c.model.tokenizer, "twostep",
                                                                 c.played.trajectory), V, "'twostep'"),
    row("read_choices", "a Grid World task for a Two-Step trajectory",
        lambda c: read_choices(c.model, c.model.tokenizer, get_task("gridworld"), c.played.trajectory), V,
        "'gridworld'"),
    row("ResidualTap", "layer 99", lambda c: ResidualTap(torch_module(c.model), [99]), V, "99"),
    row("next_token_table", "top=0", lambda c: next_token_table(c.model, "ts:start", top=0), V, "0"),
    row("play_task", "n_experiments=0", lambda c: play_task(c.model, c.task, 0, 3, 0), V, "0"),
    row("play_task", "task 'twostep'", lambda c: play_task(c.model, "twostep", 2, 3, 0), V, "'twostep'"),
    row("play_task", "experiments_per_batch=0", lambda c: play_task(c.model, c.task, 2, 3, 0, experiments_per_batch=0),
        V, "0"),
    row("play_stories", "experiments_per_batch=-1",
        lambda c: play_stories(torch_module(c.model), story_tokenizer(), c.task, 2, 1, seed=0, experiments_per_batch=-1),
        V, "-1"),
    row("play_stories", "first_experiment=-1",
        lambda c: play_stories(torch_module(c.model), story_tokenizer(), c.task, 2, 1, seed=0, first_experiment=-1),
        V, "-1"),
    row("join_residuals", "no parts", lambda c: join_residuals([], 8), V, "at least one"),
    # interventions
    row("LatentEdit", "latents=[3.7]", lambda c: LatentEdit(1, c.sae, [3.7]), V, "3.7"),
    row("LatentEdit", "latents=[64]", lambda c: LatentEdit(1, c.sae, [64]), V, "64"),
    row("LatentEdit", "latents='abc'", lambda c: LatentEdit(1, c.sae, "abc"), V, "'abc'"),
    row("LatentEdit", "layer=-1", lambda c: LatentEdit(-1, c.sae, [0]), V, "-1"),
    row("LatentEdit", "factor=nan", lambda c: LatentEdit(1, c.sae, [0], factor=NAN), V, "nan"),
    row("traced_output", "layer 99", lambda c: traced_output(c.model, [LatentEdit(99, c.sae, [0])], input_ids=c.ids),
        V, "99"),
    row("traced_output", "layer -1", lambda c: negative_layer_edit(c, -1), V, "-1"),
    row("traced_output", "layer -100", lambda c: negative_layer_edit(c, -100), V, "-100"),
    row("ce_loss_score", "layer 99", lambda c: ce_loss_score(c.model, c.sae, 99, c.ids), V, "99"),
    row("ce_loss_score", "layer -1", lambda c: ce_loss_score(c.model, c.sae, -1, c.ids), V, "-1"),
    row("ce_loss_score", "layer -100", lambda c: ce_loss_score(c.model, c.sae, -100, c.ids), V, "-100"),
    row("ce_loss_score", "layer 1.5", lambda c: ce_loss_score(c.model, c.sae, 1.5, c.ids), V, "1.5"),
    row("ce_loss_score", "logit_bytes=0", lambda c: ce_loss_score(c.model, c.sae, 1, c.ids, logit_bytes=0), V, "0"),
    row("ce_loss_scores", "layer 99", lambda c: ce_loss_scores(c.model, {1: c.sae, 99: c.sae}, c.ids), V, "99"),
    row("EditedModel", "layer 9", lambda c: EditedModel(c.model, [LatentEdit(9, c.sae, [0])]), V, "9"),
    row("play_with_edits", "layer 9",
        lambda c: play_with_edits(c.model, c.task, 2, 2, 0, edits=[LatentEdit(9, c.sae, [0])]), V, "9"),
    row("play_with_edits", "n_random_episodes=2 of 2", lambda c: play_with_edits(c.model, c.task, 2, 2, 0, 2, []),
        V, "2"),
    row("matched_latents", "chosen [70]", lambda c: matched_latents(np.ones(64), [70], 0), V, "70"),
    row("matched_latents", "seed=-1", lambda c: matched_latents(np.ones(64), [1], -1), V, "-1"),
    # SAEs
    row("SAE", "seed=1.5", lambda c: SAE(SAEConfig(d_in=8, d_sae=16), seed=1.5), V, "1.5"),
    row("SAE", "seed='abc'", lambda c: SAE(SAEConfig(d_in=8, d_sae=16), seed="abc"), V, "'abc'"),
    row("SAE", "seed=-1", lambda c: SAE(SAEConfig(d_in=8, d_sae=16), seed=-1), V, "-1"),
    row("SAEConfig", "d_in=0", lambda c: SAEConfig(d_in=0, d_sae=16), V, "0"),
    row("SAEConfig", "architecture='gated'", lambda c: SAEConfig(d_in=8, d_sae=16, architecture="gated"), V,
        "'gated'"),
    row("SAEConfig", "k=0", lambda c: SAEConfig(d_in=8, d_sae=16, architecture="topk", k=0), V, "0"),
    row("SAEConfig", "dtype='int8'", lambda c: SAEConfig(d_in=8, d_sae=16, dtype="int8"), V, "'int8'"),
    row("SAETrainingConfig", "seed=1.5", lambda c: SAETrainingConfig(seed=1.5), V, "1.5"),
    row("SAETrainingConfig", "seed='abc'", lambda c: SAETrainingConfig(seed="abc"), V, "'abc'"),
    row("SAETrainingConfig", "l1_coefficient=nan", lambda c: SAETrainingConfig(l1_coefficient=NAN), V, "nan"),
    row("SAETrainingConfig", "lr='1e-4'", lambda c: SAETrainingConfig(lr="1e-4"), V, "'1e-4'"),
    row("SAETrainingConfig", "batch_size=0", lambda c: SAETrainingConfig(batch_size=0), V, "0"),
    row("SAETrainingConfig", "adam_betas=(0.9, 1.5)", lambda c: SAETrainingConfig(adam_betas=(0.9, 1.5)), V, "1.5"),
    row("SAETrainingConfig", "max_grad_norm=-1", lambda c: SAETrainingConfig(max_grad_norm=-1), V, "-1"),
    row("train_sae", "acts of width 7", lambda c: train_sae(np.ones((10, 7)), SAEConfig(d_in=8, d_sae=16)), V, "7"),
    row("train_sae", "acts with NaN",
        lambda c: train_sae(np.full((10, 8), NAN), SAEConfig(d_in=8, d_sae=16)), V, "NaN"),
    path_row("load_sae", "NaN weights", lambda c: load_sae(c.nan_sae), V, "nan_sae"),
    row("load_sae", "missing folder", lambda c: load_sae("/no/such/sae"), FileNotFoundError, "/no/such/sae"),
    row("load_sae", "expected_d_in=48", lambda c: load_sae(c.sae_dir, expected_d_in=48), V, "48"),
    # the organism
    row("TrainingConfig", "steps=0", lambda c: TrainingConfig(steps=0), V, "0"),
    row("TrainingConfig", "seed=-1", lambda c: TrainingConfig(seed=-1), V, "-1"),
    row("TrainingConfig", "precision='float16'", lambda c: TrainingConfig(precision="float16"), V, "'float16'"),
    row("TrainingConfig", "lr=nan", lambda c: TrainingConfig(lr=NAN), V, "nan"),
    row("OrganismConfig", "d_model=0", lambda c: OrganismConfig(d_model=0), V, "0"),
    row("OrganismConfig", "n_heads=3", lambda c: OrganismConfig(d_model=32, n_heads=3), V, "3"),
    row("TranscriptRecipe", "task_mix bandit", lambda c: TranscriptRecipe(task_mix={"bandit": 1.0}), V, "bandit"),
    # the pipeline: tasks, layers and sources refused before training, playing or harvesting
    row("model_source", "'three-step'", lambda c: model_source(c.settings, "three-step"), V),
    row("played_episodes", "'three-step'", lambda c: played_episodes(c.settings, "three-step"), V),
    row("played_episodes", "missing model", lambda c: played_episodes(c.settings, "twostep", "/no/such/model"), M,
        "/no/such/model"),
    row("played_episodes", "seed=-1", lambda c: played_episodes(c.settings, "twostep", seed=-1), V, "-1"),
    row("harvested_store", "'three-step'", lambda c: harvested_store(c.settings, "three-step"), V),
    path_row("harvested_store", "played_by a BERT folder",
             lambda c: harvested_store(c.settings, "twostep", played_by=str(c.bert)), V, "bert"),
    path_row("harvested_store", "model a T5 folder", lambda c: harvested_store(c.settings, "twostep", model=str(c.t5)),
             V, "t5"),
    row("layer_saes", "'three-step'", lambda c: layer_saes(c.settings, "three-step"), V),
    row("layer_saes", "layers=[99]", lambda c: layer_saes(c.settings, "twostep", layers=[99]), V, "99"),
    row("layer_saes", "layers=[-1]", lambda c: layer_saes(c.settings, "twostep", layers=[-1]), V, "-1"),
    row("layer_saes", "layers=[3] of a 2-layer folder",
        lambda c: layer_saes(c.settings, "twostep", model=str(c.root / "micro"), layers=[3]), V, "3"),
    row("layer_saes", "architecture='gated'", lambda c: layer_saes(c.settings, "twostep", architecture="gated"), V,
        "'gated'"),
    row("layer_saes", "l1=nan", lambda c: layer_saes(c.settings, "twostep", l1=NAN), V, "nan"),
    row("layer_saes", "topk with k=None", lambda c: layer_saes(c.settings, "twostep", architecture="topk"), V, "None"),
    row("layer_saes", "bf16='yes'", lambda c: layer_saes(c.settings, "twostep", bf16="yes"), V, "'yes'"),
    row("l1_sweep", "'three-step'", lambda c: l1_sweep(c.settings, "three-step"), V),
    row("l1_sweep", "grid=[nan]", lambda c: l1_sweep(c.settings, "twostep", grid=[NAN]), V, "nan"),
    row("l1_sweep", "grid=[]", lambda c: l1_sweep(c.settings, "twostep", grid=[]), V, "empty"),
    row("chosen_l1", "'three-step'", lambda c: chosen_l1(c.settings, "three-step"), V),
    row("analysis_saes", "'three-step'", lambda c: analysis_saes(c.settings, "three-step"), V),
    row("untrained_source", "'three-step'", lambda c: untrained_source(c.settings, task_name="three-step"), V),
    row("untrained_source", "hub id, hub unreachable",
        lambda c: untrained_source(hub_unreachable(c, tdsae.resolve_settings("small", model="nobody/not-a-model-xyz"))),
        M, "'nobody/not-a-model-xyz'"),
    row("agent_trajectories", "'three-step'", lambda c: agent_trajectories(c.settings, "three-step"), V),
    row("episodes_for", "'three-step'", lambda c: episodes_for(c.settings, "three-step", c.model, AGENTS), V),
    row("harvest_params", "'three-step'", lambda c: harvest_params(c.settings, "three-step"), V),
    row("trained_organism", "settings 'tiny'", lambda c: trained_organism("tiny"), V, "'tiny'"),
    row("trained_population", "settings 'tiny'", lambda c: trained_population("tiny"), V, "'tiny'"),
    row("trained_population", "workers=0", lambda c: trained_population(c.settings, workers=0), V, "0"),
    row("population", "settings 'tiny'", lambda c: population("tiny"), V, "'tiny'"),
    row("organism_seed", "settings None", lambda c: organism_seed(None), V, "None"),
    row("trained_organism", "task_mix bandit", lambda c: trained_organism(c.settings, task_mix={"bandit": 1.0}), V,
        "bandit"),
    row("load_preset_model", "settings 'tiny'", lambda c: load_preset_model("tiny"), V, "'tiny'"),
    row("training_rows", "limit=0", lambda c: training_rows(10, 0, 0), V, "0"),
    row("training_rows", "seed=-1", lambda c: training_rows(10, 5, -1), V, "-1"),
    # training checkpoints (chapter 11)
    row("organism_settings", "settings 'tiny'", lambda c: organism_settings("tiny"), V, "'tiny'"),
    row("checkpoint_sources", "a pretrained preset",
        lambda c: checkpoint_sources(tdsae.resolve_settings("tiny", model=str(c.root / "micro"))), V, "micro"),
    row("checkpoint_sources", "'three-step'", lambda c: checkpoint_sources(c.settings, "three-step"), V),
    row("checkpoint_store", "step=-1", lambda c: checkpoint_store(c.settings, "twostep", -1), V, "-1"),
    row("checkpoint_store", "step=1.5", lambda c: checkpoint_store(c.settings, "twostep", 1.5), V, "1.5"),
    row("checkpoint_saes", "sae_seed=-1", lambda c: checkpoint_saes(c.settings, "twostep", 0, sae_seed=-1), V, "-1"),
    row("checkpoint_study", "'graph'", lambda c: checkpoint_study(c.settings, "graph"), V, "'graph'"),
    row("checkpoint_study", "sae_seeds=[]", lambda c: checkpoint_study(c.settings, sae_seeds=[]), V, "empty"),
    row("checkpoint_study", "sae_seeds=[-1]", lambda c: checkpoint_study(c.settings, sae_seeds=[-1]), V, "-1"),
    row("checkpoint_study", "n_sampled=0", lambda c: checkpoint_study(c.settings, n_sampled=0), V, "0"),
    row("checkpoint_study", "n_edge=16 of 30 episodes", lambda c: checkpoint_study(c.settings, n_edge=16), V, "16"),
    row("checkpoint_study", "seed_steps=[-1]", lambda c: checkpoint_study(c.settings, seed_steps=[-1]), V, "-1"),
    row("in_context_score", "'three-step'", lambda c: in_context_score(c.model, c.model.tokenizer, "three-step"), V),
    row("in_context_score", "n_edge=0", lambda c: in_context_score(c.model, c.model.tokenizer, n_edge=0), V, "0"),
    row("in_context_score", "n_edge=16 of 30 episodes",
        lambda c: in_context_score(c.model, c.model.tokenizer, n_edge=16), V, "16"),
    row("in_context_score", "a story reader's tokenizer", lambda c: in_context_score(c.model, story_tokenizer()), V,
        "'twostep'"),
    row("emergence_step", "lists of different lengths", lambda c: emergence_step([0, 10], [True]), V, "same length"),
    row("reward_history", "lags=0", lambda c: reward_history(None, c.targets, 0), V, "0"),
    row("context_designs", "targets without positions", lambda c: context_designs(c.targets, np.zeros((2, 4)), None), V,
        "'position'"),
    row("explained_shares", "rows that differ",
        lambda c: explained_shares(np.zeros((3, 2)), np.zeros((4, 1)), np.zeros((4, 2)), np.zeros(4, int),
                                   np.array([True, False])), V, "differ in rows"),
    row("cosine_matrix", "widths 3 and 4", lambda c: cosine_matrix(np.ones((2, 3)), np.ones((2, 4))), V, "3 and 4"),
    row("match_one_to_one", "a NaN similarity", lambda c: match_one_to_one(np.array([[NAN]])), V, "finite"),
    row("trace_back", "latent 5 of 2", lambda c: trace_back({0: np.ones((2, 3))}, 5), V, "5"),
    row("settled_step", "threshold=2", lambda c: settled_step(pd.DataFrame({"step": [0], "cosine_to_final": [1.0]}),
                                                              2), V, "2"),
    row("svcca", "rule='both'", lambda c: svcca(np.eye(8)[:, :2], np.eye(8)[:, :2], rule="both"), V, "'both'"),
    row("svcca", "as many pairs as dimensions", lambda c: svcca(np.ones((4, 4)), np.ones((4, 4))), V,
        "more pairs than dimensions"),
    row("principal_components_kept", "rule='all'", lambda c: principal_components_kept([1.0], "all"), V, "'all'"),
    row("rsa", "2 rows", lambda c: rsa(np.ones((2, 3)), np.ones((2, 3))), V, "2"),
    row("linear_cka", "rows 3 and 4", lambda c: linear_cka(np.ones((3, 2)), np.ones((4, 2))), V, "3 and 4"),
    row("latent_correlations", "a NaN activation", lambda c: latent_correlations(np.full((3, 2), NAN), np.ones((3, 2))),
        V, "finite"),
    row("pair_latents", "how='best'", lambda c: pair_latents(np.ones((2, 2)), "best"), V, "'best'"),
    row("pair_latents", "threshold=2", lambda c: pair_latents(np.ones((2, 2)), threshold=2), V, "2"),
    row("permutation_null", "n_permutations=0", lambda c: permutation_null(rsa, np.ones((4, 2)), np.ones((4, 2)), 0),
        V, "0"),
    row("permutation_null", "seed=-1",
        lambda c: permutation_null(rsa, np.ones((4, 2)), np.ones((4, 2)), 10, seed=-1), V, "-1"),
    row("svcca_null", "rule='both'", lambda c: svcca_null(np.eye(8)[:, :2], np.eye(8)[:, :2], "both"), V, "'both'"),
    row("rsa_null", "n_permutations=0", lambda c: rsa_null(np.ones((4, 2)), np.ones((4, 2)), 0), V, "0"),
    row("shared_readers", "a pretrained preset",
        lambda c: shared_readers(tdsae.resolve_settings("tiny", model=str(c.root / "micro"))), V, "micro"),
    row("shared_readers", "'three-step'", lambda c: shared_readers(c.settings, "three-step"), V),
    row("compare_feature_spaces", "threshold=2", lambda c: compare_feature_spaces(None, None, 1, 1, None, threshold=2),
        V, "2"),
    row("compare_feature_spaces", "n_permutations=0",
        lambda c: compare_feature_spaces(None, None, 1, 1, None, n_permutations=0), V, "0"),
    row("head_results", "input_ids [5]", lambda c: head_results(c.model, torch.ones(5, dtype=torch.long)), V, "(5,)"),
    row("head_results", "a row with no real token",
        lambda c: head_results(c.model, torch.ones(2, 3, dtype=torch.long), torch.tensor([[1, 1, 0], [0, 0, 0]])), V,
        "real token"),
    row("head_results", "positions [0, 9] of 3 tokens",
        lambda c: head_results(c.model, torch.ones(2, 3, dtype=torch.long), positions=[0, 9]), V, "[0, 9]"),
    row("ablate_heads", "ablation='half'",
        lambda c: ablate_heads(c.model, torch.ones(2, 3, dtype=torch.long), None, [2, 2], [1, 1], "half"), V, "'half'"),
    row("ablate_heads", "a mean ablation without a reference",
        lambda c: ablate_heads(c.model, torch.ones(2, 3, dtype=torch.long), None, [2, 2], [1, 1], "mean"), V, "'mean'"),
    row("ablate_heads", "targets [3] for 2 rows",
        lambda c: ablate_heads(c.model, torch.ones(2, 3, dtype=torch.long), None, [2, 2], [1, 1, 1]), V, "(3,)"),
    row("head_inputs", "positions [3, 0] of 3 tokens",
        lambda c: head_inputs(c.model, torch.ones(2, 3, dtype=torch.long), None, [3, 0]), V, "[3, 0]"),
    row("mean_difference_scores", "vectors [4, 3]", lambda c: mean_difference_scores(np.ones((4, 3)), [True] * 4), V,
        "(4, 3)"),
    row("random_codes", "n_directions=0", lambda c: random_codes(np.ones((2, 2, 3)), n_directions=0), V, "0"),
    row("train_code_sae", "n_latents=0", lambda c: train_code_sae(np.ones((3, 4)), n_latents=0), V, "0"),
    row("train_code_sae", "l1=-1", lambda c: train_code_sae(np.ones((3, 4)), l1=-1), V, "-1"),
    row("train_code_sae", "a NaN vector", lambda c: train_code_sae(np.full((3, 4), NAN)), V, "finite"),
    row("discrete_codes", "vectors [4, 3]", lambda c: discrete_codes(None, np.ones((4, 3))), V, "(4, 3)"),
    row("node_scores", "every example positive", lambda c: node_scores(np.zeros((4, 2), int), np.ones(4, bool)), V,
        "positive"),
    row("edge_scores", "positive as 0/1", lambda c: edge_scores(np.zeros((4, 2), int), np.array([1, 0, 1, 0])), V,
        "int64"),
    row("edge_votes", "edges [2, 3]", lambda c: edge_votes(np.zeros((2, 3))), V, "(2, 3)"),
    row("edge_votes", "k=0", lambda c: edge_votes(np.zeros((2, 2)), k=0), V, "0"),
    row("ranking_scores", "every head in the circuit",
        lambda c: ranking_scores([1.0, 2.0], np.array([True, True])), V, "in_circuit"),
    row("ranking_scores", "a NaN score", lambda c: ranking_scores([1.0, NAN], np.array([True, False])), V, "finite"),
    row("minimal_pairs", "the 'gridworld' task", lambda c: minimal_pairs(
        get_task("gridworld"), c.played.trajectory, [0.5] * 2, [5.0] * 2, c.model.tokenizer), V, "'gridworld'"),
    row("minimal_pairs", "confidence=0.3", lambda c: minimal_pairs(
        c.task, c.played.trajectory, [0.5] * 2, [5.0] * 2, c.model.tokenizer, confidence=0.3), V, "0.3"),
    row("minimal_pairs", "alpha for 3 experiments of 2", lambda c: minimal_pairs(
        c.task, c.played.trajectory, [0.5] * 3, [5.0] * 2, c.model.tokenizer), V, "(3,)"),
    row("attribution_scores", "no reference",
        lambda c: attribution_scores(c.model, torch.ones(2, 3, dtype=torch.long), None, [2, 2], [1, 1], None), V,
        "reference"),
    row("ablation_truths", "fraction 1.5", lambda c: ablation_truths(pd.DataFrame({"logp_drop": [1.0]}), fractions=(
        1.5,)), V, "1.5"),
    row("ablation_truths", "column 'nope'", lambda c: ablation_truths(pd.DataFrame({"logp_drop": [1.0]}), "nope"), V,
        "'nope'"),
    row("ranking_scores", "groups for 3 of 2 heads",
        lambda c: ranking_scores([1.0, 2.0], np.array([True, False]), groups=[0, 0, 1]), V, "groups"),
    row("circuit_study", "confidence=2", lambda c: circuit_study(c.settings, confidence=2), V, "2"),
    row("circuit_study", "n_sae_prompts=3", lambda c: circuit_study(c.settings, n_sae_prompts=3), V, "3"),
    row("circuit_study", "fractions=(0,)", lambda c: circuit_study(c.settings, fractions=(0,)), V, "0"),
    row("circuit_study", "prompts_per_agent=0", lambda c: circuit_study(c.settings, prompts_per_agent=0), V, "0"),
    row("ioi_pairs", "n_pairs=0", lambda c: ioi_pairs(story_tokenizer(), n_pairs=0), V, "0"),
    row("ioi_pairs", "a tokenizer without one-token names", lambda c: ioi_pairs(c.model.tokenizer), V, "names"),
    row("ioi_study", "the organism preset 'tiny'", lambda c: ioi_study(c.settings), V, "'tiny'"),
    row("ioi_study", "ablations=('half',)", lambda c: ioi_study(dataclasses.replace(c.settings, model="x/y"),
                                                                ablations=("half",)), V, "'half'"),
    row("universality_study", "threshold=2", lambda c: universality_study(c.settings, threshold=2), V, "2"),
    row("universality_study", "n_permutations=0", lambda c: universality_study(c.settings, n_permutations=0), V, "0"),
    row("universality_study", "'three-step'", lambda c: universality_study(c.settings, "three-step"), V),
    row("universality_study", "a population of one organism",
        lambda c: universality_study(dataclasses.replace(c.settings, n_organisms=1)), V, "n_organisms=1"),
    row("population_finding", "unit='pair of organisms' with a t-interval",
        lambda c: ClaimBook("12_x", "tiny", 0).population_finding("x", "", [0.1, 0.2], ">", 0, "c",
                                                                   unit="pair of organisms"), V, "pair of organisms"),
    row("population_finding", "across='some'",
        lambda c: ClaimBook("11_x", "tiny", 0).population_finding("x", "", [0.1], ">", 0, "c", across="some"), V,
        "'some'"),
    # activations and latents
    row("harvest_activations", "layers=[99]",
        lambda c: harvest_activations(c.model, c.played, c.root / "never-written", layers=[99]), V, "99"),
    row("store_played_residuals", "a play that kept nothing",
        lambda c: store_played_residuals(c.model, c.played, c.root / "never-written"), V, "residual"),
    row("ActivationStore.acts", "layer 99", lambda c: c.store.acts(99), V, "99"),
    row("ActivationStore.acts", "layer 1.5", lambda c: c.store.acts(1.5), V, "1.5"),
    row("ActivationStore", "missing folder", lambda c: ActivationStore("/no/such/store"), Exception, "/no/such/store"),
    row("units_at", "layer 99", lambda c: units_at(c.store, 99, [0, 1]), V, "99"),
    row("units_of", "model 'nobody'",
        lambda c: units_of({"trained": c.store}, {}, "nobody", "residual dimension", 1, c.targets), V, "'nobody'"),
    row("units_of", "kind 'neuron'", lambda c: units_of({"trained": c.store}, {}, "trained", "neuron", 1, c.targets),
        V, "'neuron'"),
    row("split_experiments", "n_experiments=0", lambda c: split_experiments(0, 0), V, "0"),
    row("split_experiments", "seed=-1", lambda c: split_experiments(10, -1), V, "-1"),
    row("shuffled_target", "mode='cols'", lambda c: shuffled_target(np.ones(4), np.arange(4), 0, mode="cols"), V,
        "'cols'"),
    row("shuffled_target", "seed=-1", lambda c: shuffled_target(np.ones(4), np.arange(4), -1), V, "-1"),
    row("best_unit", "n_boot=-5",
        lambda c: best_unit(np.ones((4, 2)), np.ones(4), np.arange(4), np.ones(4, bool), n_boot=-5), V, "-5"),
    row("probe_score", "kind 'svm'", lambda c: probe_score(np.ones((4, 2)), np.ones(4), np.arange(4), kind="svm"), V,
        "'svm'"),
    row("probe_score", "n_splits=1", lambda c: probe_score(np.ones((4, 2)), np.ones(4), np.arange(4), n_splits=1), V,
        "1"),
    row("mds_coordinates", "seed=-1", lambda c: mds_coordinates(np.ones((4, 2)), seed=-1), V, "-1"),
    row("bootstrap_interval", "n_boot=-1", lambda c: bootstrap_interval(len, np.arange(4), -1, 0), V, "-1"),
    row("bootstrap_interval", "rng=-5", lambda c: bootstrap_interval(len, np.arange(4), 10, -5), V, "-5"),
    row("ClaimBook.findings_from", "value column 'low'",
        lambda c: ClaimBook("x", "tiny", 0).findings_from(pd.DataFrame({"statement": ["s"], "control": ["c"]}),
                                                          value="low", comparison=">", threshold=0), V, "'low'"),
    row("ClaimBook.population_finding", "NaN organism",
        lambda c: ClaimBook("x", "tiny", 0).population_finding("a", "s", [0.1, NAN], ">", 0.0, "c"), V, "nan"),
    row("ClaimBook.population_finding", "bounds for 2 of 3",
        lambda c: ClaimBook("x", "tiny", 0).population_finding("a", "s", [0.1, 0.2, 0.3], ">", 0.0, "c",
                                                               per_organism_bound=[0.0, 0.1]), V, "2"),
    row("ClaimBook.population_check", "comparison '=>'",
        lambda c: ClaimBook("x", "tiny", 0).population_check("a", "s", [1.0], "=>", 0.0, "c"), V, "'=>'"),
    row("glue_population", "claim 'nowhere'", lambda c: tdsae.glue_population(ClaimBook("x", "tiny", 0), "nowhere"), V,
        "'nowhere'"),
    row("ClaimBook.check", "comparison '=>'",
        lambda c: ClaimBook("x", "tiny", 0).check("a", "s", 1.0, "=>", 0.0, "c"), V, "'=>'"),
    row("population_reading", "n=0", lambda c: tdsae.population_reading(0, "above"), V, "0"),
    row("population_reading", "side 'over'", lambda c: tdsae.population_reading(3, "over"), V, "'over'"),
    row("network_names", "a preset name", lambda c: tdsae.network_names("tiny"), V, "'tiny'"),
    row("population_marks", "n=0", lambda c: tdsae.population_marks(0), V, "0"),
    # behaviour, agents and the organism's evaluation
    row("get_agent", "'nobody'", lambda c: get_agent("nobody"), V),
    row("QLearner", "alpha=2.0", lambda c: QLearner(alpha=2.0), V, "2.0"),
    row("QLearner", "beta='hot'", lambda c: QLearner(beta="hot"), V, "'hot'"),
    row("stay_probabilities", "n_random_episodes=-1", lambda c: stay_probabilities(c.played.trajectory, -1), V, "-1"),
    row("fit_model", "grid_points=0", lambda c: fit_model(c.task, c.played.trajectory, "qlearning", 0, grid_points=0),
        V, "0"),
    row("compare_choices", "'graph'", lambda c: compare_choices(c.model, c.model.tokenizer, "graph"), V),
    row("compare_choices", "n_experiments=0", lambda c: compare_choices(c.model, c.model.tokenizer, "twostep", 0), V,
        "0"),
    row("compare_choices", "seed=-1", lambda c: compare_choices(c.model, c.model.tokenizer, "twostep", 2, -1), V, "-1"),
    row("evaluate_choice_correlation", "tasks ('bandit',)",
        lambda c: evaluate_choice_correlation(c.model, c.model.tokenizer, ("bandit",)), V, "'bandit'"),
    row("evaluate_choice_correlation", "tasks ('graph',)",
        lambda c: evaluate_choice_correlation(c.model, c.model.tokenizer, ("graph",)), V, "'graph'"),
    row("simulate_transcripts", "'bandit'",
        lambda c: simulate_transcripts("bandit", 2, seed_for(0), TranscriptRecipe()), V),
    row("simulate_transcripts", "seed=3", lambda c: simulate_transcripts("twostep", 2, 3, TranscriptRecipe()), V, "3"),
    row("simulate_transcripts", "n_experiments=0",
        lambda c: simulate_transcripts("twostep", 0, seed_for(0), TranscriptRecipe()), V, "0"),
    row("seed_for", "-1", lambda c: seed_for(-1, 2), V),
    row("build_batches", "n_batches=0", lambda c: build_batches(TranscriptRecipe(), c.model.tokenizer, 0, 1024, 0), V,
        "0"),
    row("build_batches", "seed=-1", lambda c: build_batches(TranscriptRecipe(), c.model.tokenizer, 2, 1024, -1), V,
        "-1"),
    row("train_organism", "device='tpu'", lambda c: train_organism(c.root / "never-trained", device="tpu"), V, "'tpu'"),
    path_row("train_organism", "a folder that holds files", lambda c: train_organism(c.root / "micro"),
             FileExistsError, "root"),
    row("list_checkpoints", "missing folder", lambda c: list_checkpoints("/no/such/organism"), FileNotFoundError,
        "/no/such/organism"),
    row("load_played", "missing folder", lambda c: load_played("/no/such/played"), FileNotFoundError,
        "/no/such/played"),
    row("load_residuals", "missing folder", lambda c: load_residuals("/no/such/played"), FileNotFoundError,
        "/no/such/played"),
    row("max_difference_from_forward", "experiments=[9]",
        lambda c: max_difference_from_forward(c.model, c.played, c.store, experiments=[9]), V, "9"),
    row("reconstruction_metrics", "acts of width 7", lambda c: reconstruction_metrics(c.sae, np.ones((4, 7))), V,
        "(4, 7)"),
    row("reconstruction_metrics", "batch_size=0", lambda c: reconstruction_metrics(c.sae, np.ones((4, 32)), 0), V, "0"),
    row("choose_l1", "min_explained_variance=1.5",
        lambda c: choose_l1(pd.DataFrame({"l1": [1e-5], "layer": [1], "explained_variance": [0.9]}), 1.5), V, "1.5"),
    # targets, profiles and the intervention experiments
    row("reference_targets", "alpha=2.0",
        lambda c: reference_targets(c.task, c.played.trajectory, c.store.index, alpha=2.0), V, "2.0"),
    row("reference_targets", "gamma=1.5",
        lambda c: reference_targets(c.task, c.played.trajectory, c.store.index, gamma=1.5), V, "1.5"),
    row("sr_targets", "alpha=-1.0", lambda c: sr_targets(c.task, c.played.trajectory, c.store.index, alpha=-1.0), V,
        "-1.0"),
    row("profile", "target 'td_eror'",
        lambda c: profile({"trained": c.store}, {}, c.targets, target="td_eror", selection=np.ones(2, bool)), V,
        "'td_eror'"),
    row("td_q_contrasts", "stores {'a'}",
        lambda c: td_q_contrasts({"a": c.store}, {}, c.targets, np.ones(2, bool)), V, "'a'"),
    row("td_q_contrasts", "n_boot=-1",
        lambda c: td_q_contrasts({"trained": c.store, "untrained": c.store}, {"trained": {}, "untrained": {}},
                                 c.targets, np.ones(2, bool), n_boot=-1), V, "-1"),
    row("sr_contrasts", "stores {'a'}", lambda c: sr_contrasts({"a": c.store}, {}, c.targets, np.ones(2, bool)), V,
        "'a'"),
    row("community_contrasts", "stores {'a'}",
        lambda c: community_contrasts({"a": c.store}, c.targets, np.zeros(15), 1), V, "'a'"),
    row("next_node_prediction", "n_nodes=1", lambda c: next_node_prediction(c.played, 1), V, "1"),
    row("panel_rows", "panel 'TD'", lambda c: panel_rows(c.targets, "TD"), V, "'TD'"),
    row("trained_and_untrained", "task 'bandit'", lambda c: trained_and_untrained(c.settings, "bandit"), V,
        "'bandit'"),
    row("unit_profile", "target 'td_eror'",
        lambda c: unit_profile({1: np.ones((4, 2))}, c.targets, target="td_eror", selection=np.ones(2, bool)), V,
        "'td_eror'"),
    row("compare_best", "target 'td_eror'",
        lambda c: compare_best(np.ones((4, 2)), np.ones((4, 2)), c.targets, target="td_eror",
                               selection=np.ones(2, bool)), V, "'td_eror'"),
    row("compare_best", "n_boot=-1",
        lambda c: compare_best(np.ones((4, 2)), np.ones((4, 2)), c.targets, target="td_error",
                               selection=np.array([True, False]), n_boot=-1), V, "-1"),
    row("reference_sweep", "target 'reward'",
        lambda c: reference_sweep(c.task, c.played.trajectory, c.targets, np.ones((4, 2)), selection=np.ones(2, bool),
                                  alphas=[0.1], gammas=[0.9], target="reward"), V, "'reward'"),
    row("reference_sweep", "alphas=[1.5]",
        lambda c: reference_sweep(c.task, c.played.trajectory, c.targets, np.ones((4, 2)), selection=np.ones(2, bool),
                                  alphas=[1.5], gammas=[0.9]), V, "1.5"),
    row("reference_sweep", "gammas=[2.0]",
        lambda c: reference_sweep(c.task, c.played.trajectory, c.targets, np.ones((4, 2)), selection=np.ones(2, bool),
                                  alphas=[0.1], gammas=[2.0]), V, "2.0"),
    row("behaviour_of", "n_random_episodes=2 of 2", lambda c: behaviour_of(c.task, c.played, 2, 0.1, 0.99, 0), V, "2"),
    row("choose_edit_targets", "n_layers=0",
        lambda c: choose_edit_targets(c.store, {1: SimpleNamespace(sae=c.sae)}, c.targets, np.ones(2, bool), 0), V, "0"),
    row("choose_edit_targets", "SAEs only at the last layer",
        lambda c: choose_edit_targets(c.store, {2: SimpleNamespace(sae=c.sae)}, c.targets, np.ones(2, bool), 2), V,
        "[2]"),
    row("edit_conditions", "strong_factor=nan",
        lambda c: edit_conditions({1: SimpleNamespace(sae=c.sae)}, c.chosen, NAN), V, "nan"),
    row("intervention_study", "tracking_factors without 1",
        lambda c: intervention_study(c.model, c.task, c.played, c.store, {1: SimpleNamespace(sae=c.sae)}, c.targets,
                                     np.ones(2, bool), c.chosen, seeds=[0], n_experiments=2, n_episodes=2,
                                     n_random_episodes=0, alpha=0.1, gamma=0.9, tracking_factors=(0.0, -5.0)), V,
        "1.0"),
    row("cached_play_with_edits", "play_cache='cache'",
        lambda c: cached_play_with_edits(c.model, c.task, 2, 2, 0, 0, [], play_cache="cache"), V, "cache"),
    row("cached_play_with_edits", "layer 9",
        lambda c: cached_play_with_edits(c.model, c.task, 2, 2, 0, 0, [LatentEdit(9, c.sae, [0])],
                                         play_cache=tdsae_artifacts.ArtifactStore(c.cache)), V, "9"),
    row("play_conditions", "a second condition at layer 9",
        lambda c: play_conditions(c.model, c.task, {"plain": [], "bad": [LatentEdit(9, c.sae, [0])]}, 2, 2, [0], 0,
                                  0.1, 0.99, progress=False), V, "9"),
    row("play_conditions", "seeds=[0, -1]",
        lambda c: play_conditions(c.model, c.task, {"plain": []}, 2, 2, [0, -1], 0, 0.1, 0.99, progress=False), V,
        "-1"),
    row("play_conditions", "n_random_episodes=2 of 2",
        lambda c: play_conditions(c.model, c.task, {"plain": []}, 2, 2, [0], 2, 0.1, 0.99, progress=False), V, "2"),
    row("play_conditions", "experiments_per_batch=0 with a second condition",
        lambda c: play_conditions(c.model, c.task, {"plain": [], "more": []}, 2, 2, [0], 0, 0.1, 0.99,
                                  progress=False, experiments_per_batch=0), V, "0"),
    row("play_conditions", "play_cache='cache'",
        lambda c: play_conditions(c.model, c.task, {"plain": []}, 2, 2, [0], 0, 0.1, 0.99, progress=False,
                                  play_cache="cache"), V, "'cache'"),
    row("effects_against", "baseline 'nobody'",
        lambda c: effects_against(pd.DataFrame({"condition": ["plain"], "seed": [0], "experiment": [0],
                                                "reward": [1.0]}), "nobody"), V, "'nobody'"),
    row("later_layer_tracking", "a chosen unit at layer 5 without an SAE",
        lambda c: later_layer_tracking(c.model, c.played, {}, {"plain": []}, c.targets, np.ones(2, bool),
                                       {("td_error", 5, False): None}, c.root), V, "[5]"),
    row("later_layer_tracking", "experiments [5] of 2",
        lambda c: later_layer_tracking(c.model, c.played, {1: SimpleNamespace(sae=c.sae)}, {"plain": []}, c.targets,
                                       np.zeros(2, bool), {("td_error", 1, False): None}, c.root, experiments=[5]),
        V, "[5]"),
    row("later_layer_tracking", "a selection of 3 for 2 experiments",
        lambda c: later_layer_tracking(c.model, c.played, {1: SimpleNamespace(sae=c.sae)}, {"plain": []}, c.targets,
                                       np.zeros(3, bool), {("td_error", 1, False): None}, c.root), V, "(3,)"),
    row("intervention_study", "n_experiments=3 of 2 played",
        lambda c: intervention_study(c.model, c.task, c.played, c.store, {1: SimpleNamespace(sae=c.sae)}, c.targets,
                                     np.ones(2, bool), c.chosen, seeds=[0], n_experiments=3, n_episodes=2,
                                     n_random_episodes=0, alpha=0.1, gamma=0.9), V, "3"),
    row("later_layer_tracking", "an edit at layer 9",
        lambda c: later_layer_tracking(c.model, c.played, {1: SimpleNamespace(sae=c.sae)},
                                       {"plain": [], "bad": [LatentEdit(9, c.sae, [0])]}, c.targets, np.ones(2, bool),
                                       {("td_error", 1, False): None}, c.root), V, "9"),
    row("drop_difference", "condition 'lesion' without samples",
        lambda c: drop_difference({}, "td_error", [1], ("lesion", "plain"), ("control", "plain")), V, "'lesion'"),
    # the command line
    row("tdsae book", "--seed -1", lambda c: cli_call("book", "--seed", "-1", "--root", str(ROOT)), C, "-1"),
    row("tdsae book", "--seed abc", lambda c: cli_call("book", "--seed", "abc"), C, "'abc'"),
    row("tdsae book", "--preset huge", lambda c: cli_call("book", "--preset", "huge", "--root", str(ROOT)), C,
        "'huge'"),
    row("tdsae book", "--jobs 0", lambda c: cli_call("book", "--jobs", "0", "--root", str(ROOT)), C, "0"),
    row("tdsae book", "--jobs two", lambda c: cli_call("book", "--jobs", "two", "--root", str(ROOT)), C, "'two'"),
    row("tdsae book", "--chapters 99", lambda c: cli_call("book", "--chapters", "99", "--root", str(ROOT)), C, "'99'"),
    path_row("tdsae book", "--root without _toc.yml", lambda c: cli_call("book", "--root", str(c.root)), C, "root"),
    row("tdsae book", "no papermill", lambda c: without_module(c, "papermill", "book", "--root", str(ROOT)), C,
        "papermill"),
    path_row("tdsae claims", "--root without a build", lambda c: cli_call("claims", "--root", str(c.root)), C, "root"),
]


@pytest.mark.parametrize("call,error,named", ROWS)
def test_bad_input_is_refused_fast_with_its_value_named(ctx, call, error, named):
    """The call raises ``error`` within LIMIT_S seconds, before any long work, naming the bad value."""
    bad = named(ctx)
    start = time.perf_counter()
    with pytest.raises(error) as raised:
        call(ctx)
    elapsed = time.perf_counter() - start
    assert not isinstance(raised.value, LongWorkStarted), "long work started before the bad input was refused"
    assert bad in str(raised.value), f"the message does not name {bad!r}: {raised.value}"
    assert elapsed < LIMIT_S, f"refused only after {elapsed:.1f} s"


def test_the_table_covers_every_kind_of_value_and_many_entry_points():
    """The table's size, as the closing note reports it; shrinking it should be a decision, not an accident."""
    entries = {p.id.split("[")[0] for p in ROWS}
    assert len(entries) >= 50 and len(ROWS) >= 130, (len(entries), len(ROWS))


def test_a_check_that_comes_too_late_fails_the_table(ctx):
    """The table's trap works: a call that reaches long work raises LongWorkStarted, not a clear error."""
    from tdsae.artifacts import ArtifactStore

    with pytest.raises(LongWorkStarted):
        ArtifactStore().load_or_build("x", {}, lambda tmp: None)
