"""Story-prompt play, as a pretrained LM would do it, on an offline word-level stand-in tokenizer."""

import numpy as np
import pytest
import torch
from conftest import story_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from tdsae.play.stories import last_token_logits, play_stories
from tdsae.tasks import get_task


@pytest.fixture(scope="module")
def lm():
    tokenizer = story_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096)
    return LlamaForCausalLM(config).eval(), tokenizer


def test_left_padded_batch_equals_single_prompts(lm):
    model, tokenizer = lm
    prompts = ["Q: Do you want to take the spaceship to planet X or planet Y?\nA: Planet", "Sequence: towel, key,"]
    batched = last_token_logits(model, tokenizer, prompts)
    for i, prompt in enumerate(prompts):
        single = last_token_logits(model, tokenizer, [prompt])[0]
        torch.testing.assert_close(batched[i], single, atol=1e-4, rtol=1e-4)


def test_story_play_probabilities_and_determinism(lm):
    model, tokenizer = lm
    task = get_task("twostep")
    runs = [play_stories(model, tokenizer, task, 3, 3, seed=s, n_random_episodes=1) for s in (5, 5)]
    valid = runs[0].trajectory.valid
    np.testing.assert_allclose(np.nansum(np.exp(runs[0].choice_logprobs), axis=2)[valid], 1.0, atol=1e-6)
    np.testing.assert_array_equal(runs[0].choice_logprobs, runs[1].choice_logprobs)
    assert runs[0].prompts[0][-1].endswith("A: Alien") and len(runs[0].prompts[0]) == valid[0].sum()


def test_a_choice_that_is_not_one_token_is_refused(lm):
    model, _ = lm
    tokenizer = story_tokenizer(drop="▁Y")
    with pytest.raises(ValueError, match=r"choice ' Y' is the unknown token"):
        play_stories(model, tokenizer, get_task("twostep"), 2, 1, seed=0)


@pytest.mark.parametrize("name", ["twostep", "gridworld", "graph"])
def test_outcome_positions_point_at_the_words_that_reveal_the_outcome(lm, name):
    model, tokenizer = lm
    task = get_task(name, **({"max_steps": 4} if name != "twostep" else {}))
    played = play_stories(model, tokenizer, task, 2, 3, seed=2, n_random_episodes=1)
    traj = played.trajectory
    for e in range(2):
        columns = np.nonzero(traj.valid[e])[0]
        assert played.outcome_pos[e, columns[-1]] == -1  # no prompt follows the last step
        for k, column in enumerate(columns[:-1]):
            prompt = played.prompts[e][k + 1]
            start, end = tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"][played.outcome_pos[e, column]]
            span, words = prompt[start:end], task.story_outcome_text(traj, e, int(column))
            told = prompt.rfind(words) + len(words.rstrip(",."))  # end of the last telling of the outcome
            assert start < told <= end  # the token holding the outcome's last character
            assert words.rstrip(",.").split()[-1] in span
            if name == "twostep" and traj.state[e, column] > 0:
                assert ("treasures" if traj.reward[e, column] > 0 else "junk") in span
