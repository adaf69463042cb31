"""Shared stand-ins: a word-per-token tokenizer over story prompts, so story-mode code runs offline."""

import json

from tokenizers import Regex, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tdsae.agents import RandomAgent
from tdsae.tasks import NOUNS, get_task, run_agent


# GPT-2's pre-tokenizer split (also SmolLM2's): a space joins the word after it, runs of whitespace stay together
GPT2_SPLIT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def story_texts() -> list[str]:
    """Whole stories of every task, played by random agents: the text a story tokenizer must cover."""
    from tdsae.tasks import write_story

    texts = []
    for name in ("twostep", "gridworld", "graph"):
        task = get_task(name, **({"max_steps": 4} if name != "twostep" else {}))
        traj = run_agent(task, RandomAgent(), 4, 6, seed=0)
        texts += [write_story(traj, e, task).text for e in range(traj.n_experiments)]
    return texts


def story_tokenizer(drop: str | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer that cuts text as GPT-2 and SmolLM2 do (a word keeps the space before it,
    whitespace runs stay one piece), over every piece of sampled stories and every noun; ``drop``
    leaves one word out (it then reads as the unknown token)."""
    split = pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated")
    words = {w for text in story_texts() + [" " + " ".join(NOUNS) + " X Y D F J K up down left right"]
             for w, _ in split.pre_tokenize_str(text)}
    words.discard(drop)
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(sorted(words))}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = split
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


def saved_local_llama(path, tokenizer, hidden_size: int = 16, n_layers: int = 2, seed: int = 0, max_positions: int = 4096):
    """A random Llama (2 heads) saved at path with ``tokenizer``: a local 'hub' model for the pretrained-model code."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=n_layers, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=max_positions)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def saved_micro_organism(path, n_layers: int = 2, seed: int = 0):
    """An untrained micro organism (d_model 32) saved with its tokenizer at path, loaded through load_model."""
    import torch

    from tdsae.models import load_model
    from tdsae.organism import OrganismConfig, build_organism, build_tokenizer

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    build_organism(OrganismConfig(d_model=32, n_layers=n_layers, n_heads=2, d_mlp=64), tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_model(path, device="cpu")


def planted_targets(rng, n_experiments: int = 40, per: int = 30):
    """A reference_targets-like table, decision and outcome rows alternating, whose TD error is mostly the reward
    (as in the task) plus a surprise. Returns: (targets, surprise [n], q_diff [n])."""
    import numpy as np
    import pandas as pd

    n = n_experiments * per
    targets = pd.DataFrame({"row": np.arange(n), "experiment": np.repeat(np.arange(n_experiments), per),
                            "step": np.tile(np.arange(per) % 2, n_experiments),
                            "kind": np.tile(["decision", "outcome"], n // 2), "reward": rng.integers(0, 2, n) * 1.0})
    surprise, q_diff = rng.normal(size=n), rng.normal(size=n)
    return (targets.assign(last_reward=targets.reward, td_error=2 * targets.reward + surprise, q_diff=q_diff),
            surprise, q_diff)


def write_tiny_gguf(path, seed: int = 0, tied: bool = False):
    """A tiny random Llama (2 layers, d_model 32, grouped-query attention) and a byte-level BPE tokenizer,
    written as an F32 GGUF file the way llama.cpp writes one (q and k rows permuted, llama.cpp tensor
    names). tied: the unembedding is the embedding, and the file has no output.weight (as SmolLM2's has none).
    Returns: (the model, its tokenizer) as they were before writing, to compare the round trip with.
    """
    import gguf
    import numpy as np
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(story_texts(), vocab_size=320, min_frequency=1, special_tokens=["<|endoftext|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", pad_token="<|endoftext|>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=tied,
                         bos_token_id=0, eos_token_id=0, pad_token_id=0)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # norms away from 1, so that a dropped or misplaced norm weight shows
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)

    def permute(weight, n_head):  # llama.cpp's convert_hf_to_gguf: rotary halves interleaved per head
        return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
            weight.shape)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(512)
    writer.add_embedding_length(32)
    writer.add_feed_forward_length(64)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(8)
    writer.add_vocab_size(len(tokenizer))
    writer.add_file_type(0)  # all F32
    vocab = sorted(tokenizer.backend_tokenizer.get_vocab().items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([token for token, _ in vocab])
    writer.add_token_types([3 if token == "<|endoftext|>" else 1 for token, _ in vocab])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in merges])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    writer.add_pad_token_id(0)
    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not tied:
        writer.add_tensor("output.weight", state["lm_head.weight"])
    for i in range(2):
        hf, cpp = f"model.layers.{i}.", f"blk.{i}."
        writer.add_tensor(cpp + "attn_norm.weight", state[hf + "input_layernorm.weight"])
        writer.add_tensor(cpp + "attn_q.weight", np.ascontiguousarray(permute(state[hf + "self_attn.q_proj.weight"], 4)))
        writer.add_tensor(cpp + "attn_k.weight", np.ascontiguousarray(permute(state[hf + "self_attn.k_proj.weight"], 2)))
        writer.add_tensor(cpp + "attn_v.weight", state[hf + "self_attn.v_proj.weight"])
        writer.add_tensor(cpp + "attn_output.weight", state[hf + "self_attn.o_proj.weight"])
        writer.add_tensor(cpp + "ffn_norm.weight", state[hf + "post_attention_layernorm.weight"])
        writer.add_tensor(cpp + "ffn_gate.weight", state[hf + "mlp.gate_proj.weight"])
        writer.add_tensor(cpp + "ffn_up.weight", state[hf + "mlp.up_proj.weight"])
        writer.add_tensor(cpp + "ffn_down.weight", state[hf + "mlp.down_proj.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model, tokenizer


def micro_population_settings(**overrides):
    """tiny settings for a micro population that trains in seconds: 1-layer organisms of width 16, 11 steps
    (checkpoints at 0, 10 and 11), short transcripts, small SAEs that keep any sparsity."""
    import tdsae

    knobs = dict(organism_d_model=16, organism_layers=1, organism_steps=11, n_episodes=6, n_random_episodes=2,
                 sae_epochs=2, sae_expansion=2, sae_min_explained_variance=0.0, device="cpu")
    return tdsae.resolve_settings("tiny", **{**knobs, **overrides})
