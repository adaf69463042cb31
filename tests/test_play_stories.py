"""Story-prompt play, as a pretrained LM would do it, on an offline word-level stand-in tokenizer."""

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tdsae.agents import RandomAgent
from tdsae.play import last_token_logits, play_stories
from tdsae.tasks import NOUNS, get_task, run_agent


def _story_tokenizer(drop: str | None = None) -> PreTrainedTokenizerFast:
    """A word-per-token tokenizer over the words of sampled story prompts (Metaspace: ' X' is one token)."""
    pre = pre_tokenizers.Metaspace()
    words = {w for w, _ in pre.pre_tokenize_str(" " + " ".join(NOUNS) + " X Y D F J K up down left right")}
    for name in ("twostep", "gridworld", "graph"):
        task = get_task(name)
        traj = run_agent(task, RandomAgent(), 2, 3, seed=0)
        for t in range(0, traj.n_steps, 2):
            if traj.valid[0, t]:
                words |= {w for w, _ in pre.pre_tokenize_str(task.story_prompt(traj.history_before(t), 0, int(traj.state[0, t])))}
    words.discard(drop)
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(sorted(words))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer, backend.decoder = pre, decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


@pytest.fixture(scope="module")
def lm():
    tokenizer = _story_tokenizer()
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
    tokenizer = _story_tokenizer(drop="▁Y")
    with pytest.raises(ValueError, match=r"choice ' Y' is the unknown token"):
        play_stories(model, tokenizer, get_task("twostep"), 2, 1, seed=0)
