"""The model organism: tokenizer, data, training (loss falls, deterministic), checkpoints, save/load."""

import json

import numpy as np
import pytest
import torch

from tdsae.organism import (OrganismConfig, TrainingConfig, TranscriptRecipe, build_batches, build_organism,
                            build_tokenizer, compare_choices, encode_transcripts, list_checkpoints,
                            read_training_record, simulate_transcripts, train_organism)
from tdsae.organism.corpus import batch_counts, pack_batches, seed_for
from tdsae.organism.trainer import lr_factor
from tdsae.tasks import render_transcript, transcript_vocabulary

MICRO = OrganismConfig(d_model=32, n_layers=2, n_heads=2, d_mlp=64)
RECIPE = TranscriptRecipe(chunk=16, n_episodes=10, n_random_episodes=3)
FAST = TrainingConfig(steps=8, batch_tokens=1024, lr=3e-3, warmup_steps=2, checkpoint_steps=(0, 3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One micro organism trained for FAST.steps, shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("organism") / "micro"
    return train_organism(path, MICRO, RECIPE, FAST)


def test_tokenizer_maps_every_word_to_one_id():
    tokenizer = build_tokenizer()
    vocabulary = transcript_vocabulary()
    assert len(tokenizer) == len(vocabulary)
    for word in vocabulary:
        ids = tokenizer(word)["input_ids"]
        assert len(ids) == 1, word
        assert tokenizer.convert_ids_to_tokens(ids) == [word]
    text = " ".join(vocabulary)
    assert tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]) == vocabulary
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<bos>", "<eos>", "<pad>")


def test_encode_transcripts_matches_the_tokenizer_and_pads_right():
    tokenizer = build_tokenizer()
    sims = simulate_transcripts("twostep", 3, seed_for(0, 9), RECIPE)
    words = [sims.tokens[0], sims.tokens[1][:7]]
    ids, lengths = encode_transcripts(tokenizer, words)
    assert lengths.tolist() == [len(words[0]), 7]
    assert ids[0].tolist() == tokenizer(" ".join(words[0]))["input_ids"]
    assert (ids[1, 7:] == tokenizer.pad_token_id).all()
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode_transcripts(tokenizer, [["<bos>", "no-such-word"]])


def test_simulated_agents_vary_and_transcripts_match_the_renderer():
    sims = simulate_transcripts("gridworld", 8, seed_for(1, 0), RECIPE)
    lo, hi = RECIPE.alpha_range
    assert np.all((sims.alpha >= lo) & (sims.alpha <= hi)) and len(set(sims.alpha)) == 8
    assert np.all((sims.beta >= RECIPE.beta_range[0]) & (sims.beta <= RECIPE.beta_range[1]))
    tokens, positions = render_transcript(sims.traj, 5, sims.task)
    assert sims.tokens[5] == tokens
    np.testing.assert_array_equal(sims.positions[5]["decision"], positions["decision"])
    again = simulate_transcripts("gridworld", 8, seed_for(1, 0), RECIPE)
    assert again.tokens == sims.tokens  # one seed, same data


def test_batches_follow_the_mix_and_the_token_budget():
    tokenizer = build_tokenizer()
    batches = build_batches(RECIPE, tokenizer, 12, 1024, seed=0)
    counts = batch_counts(RECIPE.task_mix, 12)
    assert sum(counts.values()) == 12 and len(batches) == 12
    for name, count in counts.items():
        assert sum(task == name for task, _ in batches) == count
    for _, ids in batches:
        assert ids.numel() <= 1024 or ids.shape[0] == 1
        assert (ids[:, 0] == tokenizer.bos_token_id).all()
    ids = torch.arange(12).reshape(4, 3)
    packed = pack_batches(ids, torch.tensor([1, 3, 2, 3]), batch_tokens=6)
    assert [b.shape for b in packed] == [(2, 3), (2, 2)]


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    config = TrainingConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(9, config) == pytest.approx(1.0)
    assert lr_factor(10, config) == pytest.approx(1.0)
    assert lr_factor(100, config) == pytest.approx(0.1)
    factors = [lr_factor(s, config) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_loss_decreases_and_training_is_deterministic(trained, tmp_path):
    losses = trained.losses
    assert len(losses) == FAST.steps
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1  # starts near log(106) = 4.66
    again = train_organism(tmp_path / "again", MICRO, RECIPE, FAST)
    assert again.losses == losses and again.tasks == trained.tasks


def test_checkpoints_exist_at_the_requested_steps(trained):
    checkpoints = list_checkpoints(trained.path)
    assert sorted(checkpoints) == [0, 3, FAST.steps]
    for step, folder in checkpoints.items():
        assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
        assert read_training_record(folder)["step"] == step
    record = read_training_record(trained.path)
    assert record["losses"] == trained.losses and record["training"]["seed"] == FAST.seed
    assert record["organism"]["d_model"] == 32 and "transformers" in record["versions"]
    assert json.loads((trained.path / "config.json").read_text())["model_type"] == "llama"
    assert not [p for p in trained.path.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_round_trip_through_load_model_gives_identical_logits(trained):
    from tdsae.models import load_model, model_dims, torch_module
    from tdsae.organism.trainer import INIT_STREAM

    tokenizer = build_tokenizer()
    ids, _ = encode_transcripts(tokenizer, simulate_transcripts("twostep", 2, seed_for(2, 0), RECIPE).tokens)
    loaded = load_model(trained.path, device="cpu")
    assert model_dims(loaded) == (2, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch_module(loaded)(input_ids=ids).logits,
                                   trained.model(input_ids=ids).logits, rtol=0, atol=0)
        # step 0 is the untrained init, drawn from the training seed's own stream
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed_for(FAST.seed, INIT_STREAM).generate_state(1)[0]))
            init = build_organism(MICRO, tokenizer)
        step0 = torch_module(load_model(list_checkpoints(trained.path)[0], device="cpu"))
        torch.testing.assert_close(step0(input_ids=ids).logits, init(input_ids=ids).logits, rtol=0, atol=0)


def test_save_refuses_to_overwrite_unless_asked(trained):
    with pytest.raises(FileExistsError, match=str(trained.path)):
        train_organism(trained.path, MICRO, RECIPE, FAST)


def test_choice_comparison_reads_legal_actions_after_random_episodes(trained):
    from tdsae.models import load_model

    model = load_model(trained.path, device="cpu")
    result = compare_choices(model, model.tokenizer, "twostep", n_experiments=4, recipe=RECIPE)
    per_experiment = 2 * (RECIPE.n_episodes - RECIPE.n_random_episodes)
    assert result.model_probs.shape == result.agent_probs.shape == (4 * per_experiment, 2)
    np.testing.assert_allclose(result.model_probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(result.agent_probs.sum(1), 1, atol=1e-9)
    assert -1 <= result.r <= 1
    with pytest.raises(ValueError, match="no choices to compare"):
        compare_choices(model, model.tokenizer, "graph", n_experiments=2, recipe=RECIPE)


def test_action_weight_one_is_the_plain_loss_and_other_weights_reweight_actions():
    from tdsae.organism.tokenizer import action_token_ids
    from tdsae.organism.trainer import next_token_loss

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = build_organism(MICRO, tokenizer).eval()
    sims = simulate_transcripts("twostep", 3, seed_for(0, 0, 0), RECIPE)
    ids, _ = encode_transcripts(tokenizer, sims.tokens)
    ids[0, -5:] = tokenizer.pad_token_id  # some padding to ignore
    actions = action_token_ids(tokenizer)
    with torch.no_grad():
        logits = model(input_ids=ids[:, :-1]).logits
        per_word = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="none")
        real = ids[:, 1:].flatten() != tokenizer.pad_token_id
        is_action = torch.isin(ids[:, 1:].flatten(), actions)
        plain = next_token_loss(model, ids, tokenizer.pad_token_id)
        weighted = next_token_loss(model, ids, tokenizer.pad_token_id, action_ids=actions, action_weight=4.0)
    assert torch.isclose(plain, per_word[real].mean(), atol=1e-6)
    w = torch.where(is_action, 4.0, 1.0) * real
    assert torch.isclose(weighted, (per_word * w).sum() / w.sum(), atol=1e-6)
    vocab = tokenizer.get_vocab()
    assert {vocab["gw:up"], vocab["ts:X"]} <= set(actions.tolist()) and vocab["ts:planetX"] not in actions.tolist()


def test_play_task_reads_transcripts_only_with_the_transcript_vocabulary(trained):
    from tdsae.models import load_model
    from tdsae.play import play_task, reads_transcripts
    from tdsae.tasks import get_task

    model = load_model(str(trained.path))
    task = get_task("twostep")
    assert reads_transcripts(model.tokenizer, task)
    story_words = [w for w in transcript_vocabulary() if not w.startswith("ts:")]
    assert not reads_transcripts(build_tokenizer(story_words), task)
    result = play_task(model, task, n_experiments=3, n_episodes=3, seed=0, n_random_episodes=1)
    assert result.tokens[0][:2] == ["<bos>", "ts:start"] and result.prompts == []


def test_an_unknown_training_precision_is_refused():
    with pytest.raises(ValueError, match="training precision 'float16' is not one of"):
        TrainingConfig(steps=1, precision="float16")


def test_r_difference_is_zero_against_itself_and_positive_against_a_worse_reader():
    from tdsae.organism import ChoiceComparison, r_difference

    rng = np.random.default_rng(0)
    agent = rng.dirichlet([1, 1], size=60)
    noisy = 0.5 * agent + 0.5 * rng.dirichlet([1, 1], size=60)
    experiment, state = np.repeat(np.arange(6), 10), np.zeros(60, int)
    good = ChoiceComparison("twostep", float(np.corrcoef(agent.ravel(), agent.ravel())[0, 1]), agent, agent, state,
                            experiment)
    worse = ChoiceComparison("twostep", float(np.corrcoef(noisy.ravel(), agent.ravel())[0, 1]), noisy, agent, state,
                             experiment)
    same = r_difference(worse, worse, n_boot=200)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
    gain = r_difference(good, worse, n_boot=200)
    assert gain["difference"] == pytest.approx(1 - worse.r) and 0 < gain["low"] <= gain["difference"] <= gain["high"]
    with pytest.raises(ValueError, match="not at the same decisions"):
        r_difference(good, ChoiceComparison("twostep", 1.0, agent[:50], agent[:50], state[:50], experiment[:50]))


def test_r_difference_skips_draws_without_spread_quietly():
    """Bootstrap draws of agents whose probabilities never vary have no r: they are skipped without a warning
    (a warning would show on the page)."""
    import warnings

    from tdsae.organism import ChoiceComparison, r_difference

    flat, varied = np.full((20, 2), 0.5), np.random.default_rng(1).dirichlet([1, 1], size=20)
    probs = np.concatenate([flat, varied])
    experiment, state = np.repeat(np.arange(4), 10), np.zeros(40, int)
    a = ChoiceComparison("twostep", 0.0, probs, probs, state, experiment)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = r_difference(a, a, n_boot=200, seed=0)
    assert result["low"] == result["high"] == 0.0


class _Oracle(torch.nn.Module):
    """A fake reader that knows each held-out transcript's next word, with a confidence that grows along the
    transcript (``growth``) or stays fixed (growth 0: a reader that learns nothing from the context)."""

    def __init__(self, ids: torch.Tensor, vocab: int, growth: float):
        super().__init__()
        self.ids, self.vocab, self.growth = ids, vocab, growth
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # for the device
        self.row = 0

    def forward(self, input_ids):
        n, length = input_ids.shape
        targets = self.ids[self.row:self.row + n, 1:length + 1]
        self.row += n
        confidence = 1.0 + self.growth * torch.arange(length, dtype=torch.float32) / length
        logits = torch.zeros(n, length, self.vocab)
        logits.scatter_(2, targets[..., None], confidence[None, :, None].expand(n, length, 1))
        return type("Output", (), {"logits": logits})()


@pytest.mark.parametrize("growth", [0.0, 4.0])
def test_in_context_score_is_zero_for_a_reader_without_context_and_negative_for_one_that_learns(growth):
    from tdsae.organism import build_tokenizer, encode_transcripts, in_context_score
    from tdsae.organism.corpus import EVAL_STREAM, simulate_transcripts

    tokenizer, recipe = build_tokenizer(), TranscriptRecipe()
    sims = simulate_transcripts("twostep", 16, seed_for(3, EVAL_STREAM, 0), recipe)
    ids, _ = encode_transcripts(tokenizer, sims.tokens)
    score = in_context_score(_Oracle(ids, len(tokenizer), growth), tokenizer, "twostep", 16, seed=3, recipe=recipe,
                             n_boot=100)
    assert score.episode_loss.shape == (16, recipe.n_episodes) and not np.isnan(score.episode_loss).any()
    if growth == 0:  # every word gets the same probability wherever it stands: no difference late against early
        assert score.score == pytest.approx(0.0, abs=1e-6)
    else:  # more confident later in the transcript: the last episodes' loss is lower than the first ones'
        assert score.high < 0 and score.episode_loss[:, -1].mean() < score.episode_loss[:, 0].mean()
