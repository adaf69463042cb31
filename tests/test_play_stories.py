"""Story play, as a pretrained LM does it: stories written forward, read through one KV cache, on offline
stand-in tokenizers that cut text as GPT-2 and SmolLM2 do."""

import numpy as np
import pytest
import torch
from conftest import story_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from tdsae.play.policy import restricted_logprobs
from tdsae.play.stories import StoryTokens, play_stories, render_stories, single_token_ids
from tdsae.tasks import check_piece, get_task, render_story_prompt, write_story

TASKS = {"twostep": {}, "gridworld": {"max_steps": 4}, "graph": {"max_steps": 4}}


@pytest.fixture(scope="module")
def lm():
    tokenizer = story_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="module")
def played(lm):
    model, tokenizer = lm
    return {name: play_stories(model, tokenizer, get_task(name, **params), 3, 3, seed=5, n_random_episodes=1)
            for name, params in TASKS.items()}


@pytest.mark.parametrize("name", TASKS)
def test_cached_play_equals_a_fresh_forward_of_every_prompt(lm, played, name):
    """The cache is only a shortcut: each decision's log-probs are those of the story up to it, read afresh."""
    model, tokenizer = lm
    result, task = played[name], get_task(name, **TASKS[name])
    vocab = tokenizer.get_vocab()
    checked = 0
    for e in range(3):
        ids = [vocab[w] for w in result.tokens[e]]
        for column in np.nonzero(result.trajectory.valid[e])[0]:
            prompt = ids[: result.decision_pos[e, column] + 1]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt])).logits[:, -1]
            state = int(result.trajectory.state[e, column])
            choices = single_token_ids(tokenizer, task.story_choices(result.trajectory.experiment_info, e, state))
            fresh = restricted_logprobs(logits, [choices], np.array([0]), result.choice_logprobs.shape[2])
            np.testing.assert_allclose(result.choice_logprobs[e, column], fresh[0], atol=1e-4)
            checked += 1
    assert checked == result.trajectory.valid.sum()


@pytest.mark.parametrize("name", TASKS)
def test_play_in_batches_is_the_play_of_all_experiments_at_once(lm, played, name):
    """Batches bound the KV cache's memory and change nothing else: experiment e draws the same set-up,
    dynamics and choices whether it plays in the first batch, a later one or beside every other."""
    model, tokenizer = lm
    task = get_task(name, **TASKS[name])
    batched = play_stories(model, tokenizer, task, 3, 3, seed=5, n_random_episodes=1, experiments_per_batch=2)
    whole = played[name]
    for field in ("state", "action", "reward", "next_state", "done", "valid"):
        np.testing.assert_array_equal(getattr(batched.trajectory, field), getattr(whole.trajectory, field))
    for key, value in whole.trajectory.experiment_info.items():
        np.testing.assert_array_equal(batched.trajectory.experiment_info[key], value)
    np.testing.assert_allclose(batched.choice_logprobs, whole.choice_logprobs, atol=1e-5)
    assert batched.tokens == whole.tokens and batched.prompts == whole.prompts
    np.testing.assert_array_equal(batched.decision_pos, whole.decision_pos)
    np.testing.assert_array_equal(batched.outcome_pos, whole.outcome_pos)


def test_cached_play_equals_play_that_rereads_the_whole_story(lm, played):
    model, tokenizer = lm
    again = play_stories(model, tokenizer, get_task("twostep"), 3, 3, seed=5, n_random_episodes=1, use_cache=False)
    np.testing.assert_allclose(again.choice_logprobs, played["twostep"].choice_logprobs, atol=1e-4)
    assert again.tokens == played["twostep"].tokens


def test_story_play_probabilities_and_determinism(lm, played):
    model, tokenizer = lm
    first = played["twostep"]
    valid = first.trajectory.valid
    np.testing.assert_allclose(np.nansum(np.exp(first.choice_logprobs), axis=2)[valid], 1.0, atol=1e-6)
    second = play_stories(model, tokenizer, get_task("twostep"), 3, 3, seed=5, n_random_episodes=1)
    np.testing.assert_array_equal(first.choice_logprobs, second.choice_logprobs)
    assert len(first.prompts) == 3 and first.prompts[0].startswith("You will travel to foreign planets")


@pytest.mark.parametrize("name", TASKS)
def test_positions_point_at_the_answer_prefix_and_at_the_words_that_reveal_the_outcome(played, name):
    result = played[name]
    traj, task = result.trajectory, get_task(name, **TASKS[name])
    prefix = {"twostep": (" Planet", " Alien"), "gridworld": ("Move",), "graph": (",",)}[name]
    for e in range(3):
        for column in np.nonzero(traj.valid[e])[0]:
            assert result.tokens[e][result.decision_pos[e, column]] in prefix
            revealed = result.tokens[e][result.outcome_pos[e, column]]
            state, next_state = int(traj.state[e, column]), int(traj.next_state[e, column])
            if name == "twostep":
                expected = (" " + "XY"[next_state - 1] if state == 0 else
                            " treasures" if traj.reward[e, column] > 0 else " junk")
            elif name == "graph":
                expected = " " + traj.experiment_info["node_names"][e][next_state]
            else:
                expected = (" treasure" if traj.done[e, column] else f" {next_state % task.size + 1}")  # the column
            assert revealed == expected, (e, column, revealed, expected)
            assert result.outcome_pos[e, column] > result.decision_pos[e, column]


@pytest.mark.parametrize("name", TASKS)
def test_rendering_a_played_trajectory_gives_the_text_and_positions_play_read(lm, played, name):
    _, tokenizer = lm
    result = played[name]
    rendered = render_stories(tokenizer, get_task(name, **TASKS[name]), result.trajectory)
    assert rendered.tokens == result.tokens and rendered.prompts == result.prompts
    np.testing.assert_array_equal(rendered.decision_pos, result.decision_pos)
    np.testing.assert_array_equal(rendered.outcome_pos, result.outcome_pos)
    column = int(np.nonzero(result.trajectory.valid[1])[0][3])
    prompt = render_story_prompt(result.trajectory, 1, column, get_task(name, **TASKS[name]))
    assert tokenizer(prompt)["input_ids"] == tokenizer.convert_tokens_to_ids(
        result.tokens[1][: result.decision_pos[1, column] + 1])


def test_stories_read_piece_by_piece_as_a_byte_level_bpe_reads_them_whole(tmp_path):
    """SmolLM2's kind of tokenizer merges whitespace runs; the pieces are cut so that it never has to."""
    from conftest import write_tiny_gguf

    from tdsae.agents import RandomAgent
    from tdsae.tasks import run_agent

    _, bpe = write_tiny_gguf(tmp_path / "tiny.gguf")
    for name, params in TASKS.items():
        task = get_task(name, **params)
        traj = run_agent(task, RandomAgent(), 3, 4, seed=1)
        for e in range(3):
            writer = write_story(traj, e, task)
            reader = StoryTokens(bpe)
            reader.add(writer.pieces)
            reader.check_whole(writer.text)  # raises where the two tokenizations part


@pytest.mark.parametrize("piece", ["A: Planet ", "junk.\n\n", "\n\nDay 2.", "  X"])
def test_a_piece_a_tokenizer_would_cut_differently_is_refused(piece):
    with pytest.raises(ValueError, match="at most one newline"):
        check_piece(piece)


def test_a_choice_that_is_not_one_token_is_refused(lm):
    model, _ = lm
    tokenizer = story_tokenizer(drop=" Y")
    with pytest.raises(ValueError, match=r"choice ' Y' is the unknown token"):
        play_stories(model, tokenizer, get_task("twostep"), 2, 1, seed=0)


def test_only_the_story_s_first_piece_gets_the_tokenizer_s_opening_token():
    """A tokenizer that opens every text with a BOS opens the story with one, not each piece."""
    from tokenizers import processors

    from tdsae.agents import RandomAgent
    from tdsae.tasks import run_agent

    tokenizer = story_tokenizer()
    bos = tokenizer.convert_tokens_to_ids("</s>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single="</s> $A",
                                                                               special_tokens=[("</s>", bos)])
    task = get_task("twostep")
    writer = write_story(run_agent(task, RandomAgent(), 1, 2, seed=0), 0, task)
    reader = StoryTokens(tokenizer)
    reader.add(writer.pieces[:3])  # several pieces in the first call, as play's first decision feeds them
    reader.add(writer.pieces[3:])
    assert reader.ids[0] == bos and reader.ids.count(bos) == 1
    reader.check_whole(writer.text)


def test_reading_a_story_gives_the_choices_the_model_played_with(lm, played):
    """read_choices on the model's own trajectories, written as stories, returns what it played with."""
    from tdsae.play import read_choices

    model, tokenizer = lm
    for name, params in TASKS.items():
        result = played[name]
        read = read_choices(model, tokenizer, get_task(name, **params), result.trajectory)
        assert read.tokens == result.tokens
        np.testing.assert_allclose(read.choice_logprobs, result.choice_logprobs, atol=1e-4, equal_nan=True)


def test_a_pretrained_model_is_compared_with_held_out_agents_from_stories(lm):
    """compare_choices reads as the model reads: a model that knows no transcript words reads stories."""
    from tdsae.organism import TranscriptRecipe, compare_choices

    model, tokenizer = lm
    recipe = TranscriptRecipe(n_episodes=3, n_random_episodes=1)
    result = compare_choices(model, tokenizer, "twostep", n_experiments=3, seed=0, recipe=recipe)
    assert result.model_probs.shape == result.agent_probs.shape == (3 * 2 * 2, 2)
    np.testing.assert_allclose(result.model_probs.sum(1), 1, atol=1e-6)
    assert np.ptp(result.model_probs[:, 0]) > 0  # read at each decision, not one constant
