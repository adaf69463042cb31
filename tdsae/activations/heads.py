"""What each attention head writes into the residual stream, for circuit finding (chapter 13).

    vectors = head_results(model, input_ids, attention_mask)             # [batch, layers, heads, d_model], mean
    vectors = head_results(model, input_ids, attention_mask, positions)  # at one token per row (the decision)

A head's result is its share of the attention output, z_h · W_O[:, h] (TransformerLens ``hook_result``): the
input of ``o_proj`` split into heads, each multiplied by its own block of the output projection. Llama's ``o_proj``
has no bias, and a bias would belong to no head, so the results of a layer's heads sum to its attention output.
"""

from __future__ import annotations

from typing import Any

import torch

from tdsae.models import is_remote, model_dims, residual_layers, torch_module


def check_token_batch(input_ids, attention_mask=None, positions=None, positions_required: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """input_ids [batch, seq], attention_mask of its shape (default all ones) with a real token in every row, and
    positions: [batch] token indices (or None where not required), as tensors; ValueError naming what is wrong."""
    input_ids = torch.as_tensor(input_ids)
    if input_ids.ndim != 2 or input_ids.numel() == 0:
        raise ValueError(f"input_ids must be [batch, seq] with at least one token; got shape {tuple(input_ids.shape)}")
    mask = torch.ones_like(input_ids) if attention_mask is None else torch.as_tensor(attention_mask)
    if mask.shape != input_ids.shape or not bool((mask.sum(1) > 0).all()):
        raise ValueError(f"attention_mask must have input_ids' shape {tuple(input_ids.shape)} and a real token in every "
                         f"row; got shape {tuple(mask.shape)}")
    if positions is None and positions_required:
        raise ValueError("positions must be [batch] token indices, one per row; got None")
    if positions is not None:
        positions = torch.as_tensor(positions)
        if positions.shape != (input_ids.shape[0],) or bool((positions < 0).any()) or bool(
                (positions >= input_ids.shape[1]).any()):
            raise ValueError(f"positions must be [batch] token indices in 0 .. {input_ids.shape[1] - 1}; got "
                             f"{positions.tolist()}")
    return input_ids, mask, positions


def head_results(model: Any, input_ids, attention_mask=None, positions=None) -> torch.Tensor:
    """Every head's result at every layer, read in one nnsight trace.

    Args: model: a tdsae.models.load_model result of a Llama-like model; input_ids [batch, seq]; attention_mask
    [batch, seq] (1 = a real token; default all ones); positions: None for the mean over each row's real tokens
    (O'Neill & Bui's head vector, the first token included), or [batch] the token to read in each row.
    Returns: float32 [batch, n_layers, n_heads, d_model] on the CPU.
    """
    import nnsight

    input_ids, mask, positions = check_token_batch(input_ids, attention_mask, positions)
    module = torch_module(model)
    n_layers, d_model = model_dims(model)
    heads = module.config.num_attention_heads
    blocks = residual_layers(model)
    device = next(module.parameters()).device
    with torch.no_grad(), model.trace(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                      remote=is_remote(model)):
        inputs = nnsight.save([blocks[layer].self_attn.o_proj.input for layer in range(n_layers)])
    results = []
    for layer, z in enumerate(inputs):
        weight = residual_layers(module)[layer].self_attn.o_proj.weight.detach()  # [d_model, heads * d_head]
        z = z.float().reshape(*z.shape[:2], heads, -1)  # [batch, seq, heads, d_head]
        per_head = torch.einsum("bshd,mhd->bshm", z, weight.float().reshape(d_model, heads, -1))
        if positions is None:
            weights = mask.to(per_head.device, per_head.dtype)
            per_head = (per_head * weights[:, :, None, None]).sum(1) / weights.sum(1)[:, None, None]
        else:
            per_head = per_head[torch.arange(len(positions)), positions.to(per_head.device)]
        results.append(per_head.detach().cpu())
    return torch.stack(results, 1)
