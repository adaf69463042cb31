"""The organism's architecture: a small ``LlamaForCausalLM`` built from a config dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from tdsae.validation import check_count

# The longest transcript at the book's settings is Grid World: 30 episodes that each hit the
# 12-move cap are 1 + 30 * (2 + 3 * 12 - 1) = 1111 words. RoPE has no position table, so a
# generous limit costs nothing.
LONGEST_TRANSCRIPT = 1111


@dataclass(frozen=True)
class OrganismConfig:
    """Shape of the organism (a Llama decoder); about 1M parameters at the defaults."""

    d_model: int = 128  # residual-stream width (hidden_size)
    n_layers: int = 4  # decoder layers
    n_heads: int = 4  # attention heads (d_model / n_heads per head); no grouped-query sharing
    d_mlp: int = 512  # SwiGLU inner width (intermediate_size)
    max_positions: int = 2048  # longest sequence the config declares; >= LONGEST_TRANSCRIPT
    rope_theta: float = 10000.0  # RoPE base, Llama's default
    tie_embeddings: bool = False  # False: lm_head is its own matrix, as in Llama proper

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "d_mlp", "max_positions"):
            check_count(getattr(self, name), name)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")


def build_organism(config: OrganismConfig, tokenizer):
    """A freshly initialised ``LlamaForCausalLM`` (weights from torch's global RNG) sized to the tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.d_model, intermediate_size=config.d_mlp,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads, max_position_embeddings=config.max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        tie_word_embeddings=config.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, attention_dropout=0.0,
    )
    model = LlamaForCausalLM(llama)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
