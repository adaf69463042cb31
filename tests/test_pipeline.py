"""The door from a preset to its artifacts: organisms cached by every setting (precision included), episodes that
survive the round trip, the untrained control of a pretrained model."""

import numpy as np
import pytest
import torch

import tdsae
from tdsae.artifacts import ArtifactStore
from tdsae.organism import OrganismConfig, build_organism, build_tokenizer
from tdsae.organism import read_training_record
from tdsae.pipeline.episodes import agent_trajectories, untrained_source
from tdsae.pipeline.organisms import configs_from_settings
from tdsae.play import play_transcripts
from tdsae.play.result import load_played, save_played
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


def test_episodes_are_keyed_by_the_folder_a_model_loads_from_and_agents_by_name(tmp_path):
    """A pretrained model's episodes are keyed by the folder it loads from (a GGUF's converted one), and the
    held-out agents, which are no model, by their name: neither goes near the hub."""
    from conftest import write_tiny_gguf

    from tdsae.pipeline import AGENTS, model_folder, play_params

    write_tiny_gguf(tmp_path / "tiny.gguf")
    settings = tdsae.resolve_settings("small", model=str(tmp_path / "tiny.gguf"), n_experiments=2, n_episodes=2,
                                      n_random_episodes=1)
    assert play_params(settings, "twostep", AGENTS)["model"] == AGENTS
    folder = model_folder(str(tmp_path / "tiny.gguf"), ArtifactStore(tmp_path / "cache"))
    assert play_params(settings, "twostep", folder)["model"] == folder


def test_a_play_is_keyed_by_the_words_the_task_is_written_in(monkeypatch):
    """Another story wording (or transcript) is another play: a cached play of the old text is never read back.
    The same wording gives the same key, and each task its own."""
    from tdsae.pipeline import AGENTS, play_params
    from tdsae.tasks import GridWorldTask

    settings = tdsae.resolve_settings("tiny")
    key = play_params(settings, "gridworld", AGENTS)
    assert play_params(settings, "gridworld", AGENTS) == key
    assert play_params(settings, "twostep", AGENTS)["rendering"] != key["rendering"]
    monkeypatch.setattr(GridWorldTask, "story_question", lambda self, info, experiment, state: "Your move:")
    assert play_params(settings, "gridworld", AGENTS)["rendering"] != key["rendering"]
    monkeypatch.undo()
    monkeypatch.setattr(GridWorldTask, "transcript_action_tokens", lambda self, state: ["gw:go"] * 4)
    assert play_params(settings, "gridworld", AGENTS)["rendering"] != key["rendering"]


def test_held_out_agents_are_seeded_and_have_their_own_parameters():
    settings = tdsae.resolve_settings("tiny", n_experiments=4, n_episodes=3, n_random_episodes=1)
    traj, alpha, beta = agent_trajectories(settings, "twostep")
    again, alpha_again, _ = agent_trajectories(settings, "twostep")
    np.testing.assert_array_equal(traj.action, again.action)
    np.testing.assert_array_equal(alpha, alpha_again)
    assert len(np.unique(alpha)) == 4 and traj.n_experiments == 4


def test_configs_follow_the_preset():
    from tdsae.presets import resolve_settings

    config, recipe, training = configs_from_settings(resolve_settings("tiny", organism_steps=7, seed=3))
    assert (config.d_model, config.n_layers, training.steps, training.seed) == (128, 4, 7, 3)
    assert recipe.n_random_episodes == 7 and recipe.gridworld_max_steps == 12
    # the walker: same width, depth and seed, half the steps of 4x the words, a narrower SwiGLU and wider heads
    from tdsae.pipeline.organisms import WALKER_HEADS, WALKER_MIX, WALKER_MLP_RATIO

    walker, walks, walker_training = configs_from_settings(resolve_settings("tiny", organism_steps=7, seed=3),
                                                           WALKER_MIX)
    assert (walker.d_model, walker.n_layers, walker_training.seed) == (128, 4, 3) and walks.task_mix == WALKER_MIX
    assert (config.d_mlp, config.n_heads) == (512, 4) and (walker.d_mlp, walker.n_heads) == (
        WALKER_MLP_RATIO * 128, WALKER_HEADS) == (256, 2)
    assert (walker_training.steps, walker_training.batch_tokens) == (4, 4096)


def test_population_members_differ_only_in_their_training_seed():
    import dataclasses

    from tdsae.pipeline import organism_seed, population
    from tdsae.presets import resolve_settings

    settings = resolve_settings("tiny", seed=3)
    members = population(settings)
    assert [m.organism for m in members] == list(range(settings.n_organisms)) and settings.n_organisms >= 3
    seeds = [configs_from_settings(m)[2].seed for m in members]
    assert seeds[0] == 3 and len(set(seeds)) == len(seeds)  # organism 0 is the master seed's own organism
    assert all(dataclasses.replace(m, organism=0) == settings for m in members)  # nothing else differs
    # another master seed shares no organism with this population
    assert not set(seeds) & {organism_seed(m) for m in population(resolve_settings("tiny", seed=4))}
    assert seeds == [organism_seed(m) for m in population(resolve_settings("tiny", seed=3))]  # reproducible
    # a pretrained preset's population is its one model
    assert population(resolve_settings("small")) == [resolve_settings("small")]


def test_trained_organism_is_cached_by_its_settings(tmp_path, monkeypatch):
    import tdsae.pipeline.organisms as organism
    from tdsae.artifacts import ArtifactStore
    from tdsae.models import load_model
    from tdsae.presets import resolve_settings

    calls = []
    real_train = organism.train_organism
    monkeypatch.setattr(organism, "train_organism", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    store = ArtifactStore(tmp_path)
    micro = dict(organism_d_model=16, organism_layers=1, organism_steps=2, n_episodes=8, device="cpu")
    first = organism.trained_organism(resolve_settings("tiny", **micro), store)
    again = organism.trained_organism(resolve_settings("tiny", **micro), store)
    other = organism.trained_organism(resolve_settings("tiny", **{**micro, "seed": 1}), store)
    walker = organism.trained_organism(resolve_settings("tiny", **micro), store, task_mix=organism.WALKER_MIX)
    assert first == again != other != walker and first != walker and len(calls) == 3
    assert load_model(str(first)).config.hidden_size == 16
    record = read_training_record(walker)
    assert record["recipe"]["task_mix"] == {"graph": 1.0} and set(record["tasks"]) == {"graph"}
    assert set(read_training_record(first)["tasks"]) < {"twostep", "gridworld", "graph"}


def test_precision_comes_from_the_hardware_and_keys_the_organism(tmp_path, monkeypatch):
    """fp32 where bf16 is not native; the precision is in the cache key and the record, so the same seed
    trained at two precisions gives two organisms."""
    import tdsae.pipeline.organisms as organism
    from tdsae import runtime
    from tdsae.artifacts import ArtifactStore
    from tdsae.presets import resolve_settings

    monkeypatch.setattr(runtime, "cpu_facts", lambda: {"capability": "AVX2", "bf16_flags": [], "features_known": True,
                                                       "onednn_bf16": False, "machine": "x86_64"})
    monkeypatch.delenv(runtime.PRECISION_ENV, raising=False)
    runtime._decide.cache_clear()
    micro = resolve_settings("tiny", organism_d_model=16, organism_layers=1, organism_steps=2, n_episodes=8,
                             device="cpu")
    try:
        assert configs_from_settings(micro)[2].precision == "float32"
        store = ArtifactStore(tmp_path)
        fp32 = organism.trained_organism(micro, store)
        monkeypatch.setenv(runtime.PRECISION_ENV, "bf16")
        runtime._decide.cache_clear()
        bf16 = organism.trained_organism(micro, store)
    finally:
        runtime._decide.cache_clear()
    assert fp32 != bf16
    records = [read_training_record(path) for path in (fp32, bf16)]
    assert [r["training"]["precision"] for r in records] == ["float32", "bfloat16"]
    assert records[0]["losses"] != records[1]["losses"]  # the forward pass really ran in another dtype


def test_an_organism_trains_to_the_same_weights_on_one_thread_or_two(tmp_path):
    """What lets trained_population train organisms side by side, one thread each: the schedule never
    changes an organism (on this machine's CPU kernels; a failure here means it would)."""
    import torch

    from tdsae.organism import OrganismConfig, TrainingConfig, TranscriptRecipe, train_organism

    weights = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            result = train_organism(tmp_path / f"threads-{n}", OrganismConfig(d_model=32, n_layers=2, d_mlp=128),
                                    TranscriptRecipe(n_episodes=8),
                                    TrainingConfig(steps=6, batch_tokens=512, warmup_steps=2, precision="float32",
                                                   checkpoint_steps=()))
            weights.append({k: v.clone() for k, v in result.model.state_dict().items()})
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_population_trains_side_by_side_into_the_same_folders(tmp_path):
    import tdsae.pipeline.organisms as organism
    from tdsae.artifacts import ArtifactStore
    from tdsae.models import load_model
    from tdsae.presets import resolve_settings

    settings = resolve_settings("tiny", organism_d_model=16, organism_layers=1, organism_steps=2, n_episodes=8,
                                n_organisms=2, device="cpu")
    store = ArtifactStore(tmp_path)
    folders = organism.trained_population(settings, store=store, workers=2)
    assert set(folders) == {(0, "all"), (1, "all"), (0, "walker"), (1, "walker")}
    for (i, mix), folder in folders.items():  # each where trained_organism finds it, without training again
        member = organism.population(settings)[i]
        assert folder == organism.trained_organism(member, store, None if mix == "all" else organism.WALKER_MIX)
        assert read_training_record(folder)["training"]["seed"] == organism.organism_seed(member)
    assert load_model(str(folders[(1, "walker")])).config.hidden_size == 16
    assert len(set(folders.values())) == 4


def test_a_pretrained_models_story_play_writes_its_own_harvest_and_reads_each_story_once(tmp_path, monkeypatch):
    """Story play keeps the residual stream as it goes: harvested_store then finds its artifact written and
    never reads the stories a second time; another reader (the untrained control) still gets a second pass."""
    from conftest import saved_local_llama, story_tokenizer

    import tdsae.pipeline.episodes as episodes

    saved_local_llama(tmp_path / "lm", story_tokenizer(), hidden_size=32)
    settings = tdsae.resolve_settings("small", model=str(tmp_path / "lm"), n_experiments=2, n_episodes=3,
                                      n_random_episodes=1, device="cpu")
    store = ArtifactStore(tmp_path / "cache")
    second_passes = []
    real_harvest = episodes.harvest_activations
    monkeypatch.setattr(episodes, "harvest_activations", lambda *a, **k: second_passes.append(a) or real_harvest(*a, **k))
    harvest = episodes.harvested_store(settings, "twostep", store=store)  # plays first, which harvests
    assert second_passes == [] and harvest.layers == (0, 1, 2) and harvest.n_rows == 2 * 3 * 2 * 2
    assert store.finished("activations", episodes.harvest_params(settings, "twostep")[0])
    played = episodes.played_episodes(settings, "twostep", store=store)
    assert played.residuals is None  # what is cached is the play, not the residuals it kept
    np.testing.assert_array_equal(harvest.index.position, episodes.harvested_store(settings, "twostep",
                                                                                   store=store).index.position)
    untrained = untrained_source(settings, store)
    episodes.harvested_store(settings, "twostep", model=untrained, played_by=str(tmp_path / "lm"), store=store)
    assert len(second_passes) == 1  # another model reading these stories needs its own pass


def test_a_long_story_play_resumes_at_the_first_batch_not_saved(tmp_path, monkeypatch):
    """A story play in several batches saves each as it finishes: stopped in its third batch, it plays only that
    batch again, and the run it stacks is the play of all experiments at once, kept residuals included; the pieces
    are removed once the whole run is saved."""
    from conftest import saved_local_llama, story_tokenizer

    import tdsae.pipeline.episodes as episodes
    from tdsae.models import load_model, torch_module
    from tdsae.play.result import load_residuals, save_residuals
    from tdsae.play.stories import join_residuals, play_stories

    saved_local_llama(tmp_path / "lm", story_tokenizer(), hidden_size=32)
    settings = tdsae.resolve_settings("small", model=str(tmp_path / "lm"), n_experiments=5, n_episodes=3,
                                      n_random_episodes=1, story_batch=2, device="cpu")
    store = ArtifactStore(tmp_path / "cache")
    played_batches = []

    def stopped_in_the_third(*args, first_experiment=0, **kwargs):
        played_batches.append(first_experiment)
        if first_experiment == 4 and played_batches.count(4) == 1:
            raise KeyboardInterrupt("the reader's session ended")
        return play_stories(*args, first_experiment=first_experiment, **kwargs)

    monkeypatch.setattr(episodes, "play_stories", stopped_in_the_third)
    try:
        episodes.played_episodes(settings, "twostep", store=store)
    except KeyboardInterrupt:
        pass
    params = episodes.play_params(settings, "twostep")
    assert played_batches == [0, 2, 4] and not store.finished("episodes", params)
    assert len(list((tmp_path / "cache" / episodes.PLAYED_BATCH).glob("[!.]*"))) == 2  # batches 0-1 and 2-3
    played = episodes.played_episodes(settings, "twostep", store=store)
    assert played_batches == [0, 2, 4, 4]  # only the batch that was stopped is played again
    assert list((tmp_path / "cache" / episodes.PLAYED_BATCH).glob("[!.]*")) == []

    lm = load_model(str(tmp_path / "lm"), device="cpu")
    whole = play_stories(torch_module(lm), lm.tokenizer, episodes.task_for(settings, "twostep"), 5, 3, 0, 1,
                         residual_layers=[0, 1, 2])
    np.testing.assert_array_equal(played.trajectory.action, whole.trajectory.action)
    np.testing.assert_allclose(played.choice_logprobs, whole.choice_logprobs, atol=1e-5)
    assert played.tokens == whole.tokens and played.prompts == whole.prompts
    harvest = episodes.harvested_store(settings, "twostep", store=store)
    keys = list(zip(harvest.index.experiment, harvest.index.position))
    for i, layer in enumerate(harvest.layers):
        np.testing.assert_allclose(harvest.acts(layer, harvest.index.row.to_numpy()), whole.residuals.at(keys)[:, i],
                                   atol=1e-5)

    (tmp_path / "saved").mkdir()
    save_residuals(whole.residuals, tmp_path / "saved")
    again = load_residuals(tmp_path / "saved")
    assert again.rows == whole.residuals.rows and again.layers == whole.residuals.layers
    np.testing.assert_array_equal(again.values, whole.residuals.values)
    with pytest.raises(ValueError, match="kept by two"):
        join_residuals([again, whole.residuals], 32)
