"""Lockstep play: the cached incremental forward must equal a plain forward on the finished transcript."""

import numpy as np
import pytest
import torch

from tdsae.organism import OrganismConfig, build_organism, build_tokenizer
from tdsae.play import play_transcripts
from tdsae.tasks import TranscriptBuilder, get_task, render_transcript


@pytest.fixture(scope="module")
def organism():
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = build_organism(OrganismConfig(d_model=32, n_layers=2, n_heads=2, d_mlp=64), tokenizer).eval()
    return model, tokenizer


@pytest.fixture(scope="module", params=["twostep", "gridworld", "graph"])
def played(request, organism):
    model, tokenizer = organism
    task = get_task(request.param)
    return task, play_transcripts(model, tokenizer, task, n_experiments=6, n_episodes=4, seed=3, n_random_episodes=1)


def test_cached_choices_equal_a_plain_forward_of_each_transcript(organism, played):
    model, tokenizer = organism
    task, result = played
    vocab = tokenizer.get_vocab()
    for e in range(result.trajectory.n_experiments):
        builder = TranscriptBuilder(task, result.trajectory.experiment_info, e)  # names differ per experiment
        ids = torch.tensor([[vocab[t] for t in result.tokens[e]]])
        with torch.no_grad():
            logits = model(ids).logits[0].double()
        for col in np.nonzero(result.trajectory.valid[e])[0]:
            pos, state = result.decision_pos[e, col], result.trajectory.state[e, col]
            choice = [vocab[t] for t in builder.choice_tokens(state)]
            expected = torch.log_softmax(logits[pos, choice], dim=0).numpy()
            np.testing.assert_allclose(result.choice_logprobs[e, col, : len(choice)], expected, atol=1e-4)


def test_transcripts_and_positions_match_the_renderer(played):
    _, result = played
    for e in range(result.trajectory.n_experiments):
        tokens, positions = render_transcript(result.trajectory, e)
        columns = np.nonzero(result.trajectory.valid[e])[0]
        assert tokens == result.tokens[e]
        assert np.array_equal(positions["decision"], result.decision_pos[e, columns])
        assert np.array_equal(positions["outcome"], result.outcome_pos[e, columns])


def test_legal_choice_probabilities_sum_to_one(played):
    _, result = played
    valid = result.trajectory.valid
    totals = np.nansum(np.exp(result.choice_logprobs), axis=2)[valid]
    np.testing.assert_allclose(totals, 1.0, atol=1e-6)


def test_play_is_deterministic_and_seed_dependent(organism):
    model, tokenizer = organism
    task = get_task("twostep")
    runs = [play_transcripts(model, tokenizer, task, 5, 6, seed=s, n_random_episodes=2) for s in (7, 7, 8)]
    assert np.array_equal(runs[0].trajectory.action, runs[1].trajectory.action)
    np.testing.assert_array_equal(runs[0].choice_logprobs, runs[1].choice_logprobs)
    assert not np.array_equal(runs[0].trajectory.action, runs[2].trajectory.action)
    random_steps = runs[0].trajectory.info["random_choice"]
    assert random_steps[:, runs[0].trajectory.episode[0] < 2].all()
    assert not random_steps[:, runs[0].trajectory.episode[0] >= 2].any()


def test_naive_recompute_gives_the_same_numbers(organism):
    model, tokenizer = organism
    task = get_task("gridworld")
    cached = play_transcripts(model, tokenizer, task, 4, 3, seed=0, n_random_episodes=1)
    naive = play_transcripts(model, tokenizer, task, 4, 3, seed=0, n_random_episodes=1, use_cache=False)
    assert np.array_equal(cached.trajectory.action, naive.trajectory.action)
    np.testing.assert_allclose(cached.choice_logprobs, naive.choice_logprobs, atol=1e-5)


def test_preallocated_cache_refuses_to_overflow(organism):
    from tdsae.play import CachedBatch

    model, tokenizer = organism
    batch = CachedBatch(model, 2, tokenizer.pad_token_id, "cpu", max_len=3)
    batch.feed([[1, 2], [1]])
    with pytest.raises(RuntimeError, match="outgrew the preallocated cache of 3 tokens"):
        batch.feed([[3, 4], [2]])


def test_reading_a_trajectory_gives_the_choices_the_model_played_with(organism, played):
    """read_choices is teacher-forced play: on the model's own trajectory it returns its played log-probs."""
    from tdsae.play import read_choices

    model, tokenizer = organism
    task, result = played
    read = read_choices(model, tokenizer, task, result.trajectory, buffer_mb=0.01)  # a batch per experiment
    valid = result.trajectory.valid
    assert np.isfinite(read.choice_logprobs[valid]).any()
    np.testing.assert_allclose(read.choice_logprobs, result.choice_logprobs, atol=1e-4, equal_nan=True)
    np.testing.assert_array_equal(read.decision_pos, result.decision_pos)
