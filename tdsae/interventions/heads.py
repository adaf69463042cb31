"""Per-head ablation at one token: the ground truth that chapter 13 scores circuit-finding methods against.

    z = head_inputs(model, ids, mask, positions)                      # {layer: [batch, heads, d_head]} at the tokens
    effects = ablate_heads(model, ids, mask, positions, targets, replacement)   # one row per (layer, head)

A head is ablated by replacing its z (its slice of o_proj's input, before the output projection) at the chosen token
of each row: by zero, by a fixed vector (mean ablation: its mean over reference prompts), or row by row by its value
on another prompt (resample ablation: the row's negative counterpart). The effect is read at that token: the drop in
the target token's log-probability and the KL divergence of the ablated next-token distribution from the clean one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tdsae.activations.heads import check_token_batch
from tdsae.models import is_remote, model_dims, residual_layers, torch_module

ABLATIONS = ("zero", "mean", "resample")


def head_inputs(model: Any, input_ids, attention_mask, positions) -> dict[int, torch.Tensor]:
    """Every head's z at one token per row: {layer: float32 [batch, heads, d_head]} (o_proj's input, split)."""
    import nnsight

    input_ids, mask, positions = check_token_batch(input_ids, attention_mask, positions, positions_required=True)
    n_layers, _ = model_dims(model)
    heads = torch_module(model).config.num_attention_heads
    blocks, rows = residual_layers(model), torch.arange(len(positions))
    device = next(torch_module(model).parameters()).device
    with torch.no_grad(), model.trace(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                      remote=is_remote(model)):
        z = nnsight.save([blocks[layer].self_attn.o_proj.input[rows, positions] for layer in range(n_layers)])
    return {layer: values.float().reshape(len(positions), heads, -1).cpu() for layer, values in enumerate(z)}


def ablate_heads(model: Any, input_ids, attention_mask, positions, targets, ablation: str = "zero",
                 reference: dict | None = None) -> pd.DataFrame:
    """Ablate every head alone at one token per row and measure what it changes there.

    Args: ablation: "zero"; "mean" (reference: head_inputs of reference prompts, averaged over their rows); or
    "resample" (reference: head_inputs of one counterpart prompt per row, e.g. the row with its history made
    uninformative). targets: [batch] the token ids whose log-probability at the chosen token is the behaviour.
    Returns: one row per (layer, head): logp_drop (clean minus ablated log-probability of the target, mean over
    rows; positive when the head helps) and kl (mean KL(clean || ablated) of the next-token distribution).
    """
    import nnsight

    if ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation {ablation!r}; choose one of: {', '.join(ABLATIONS)}")
    input_ids, mask, positions = check_token_batch(input_ids, attention_mask, positions, positions_required=True)
    targets = torch.as_tensor(targets)
    if targets.shape != positions.shape:
        raise ValueError(f"targets must be [batch] token ids, one per row; got shape {tuple(targets.shape)}")
    n_layers, _ = model_dims(model)
    heads = torch_module(model).config.num_attention_heads
    if (ablation == "zero") != (reference is None) or (reference is not None and sorted(reference) != list(
            range(n_layers))):
        raise ValueError(f"a {ablation!r} ablation takes {'no reference' if ablation == 'zero' else 'a reference'}: "
                         f"head_inputs of reference prompts, one entry per layer 0 .. {n_layers - 1}")
    blocks, rows = residual_layers(model), torch.arange(len(positions))
    device = next(torch_module(model).parameters()).device
    inputs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}

    def log_probs(layer: int | None = None, head: int | None = None) -> torch.Tensor:
        with torch.no_grad(), model.trace(**inputs, remote=is_remote(model)):
            if layer is not None:
                z = blocks[layer].self_attn.o_proj.input
                width = z.shape[-1] // heads
                if ablation == "zero":
                    values = torch.zeros(len(positions), width)
                else:
                    values = reference[layer][:, head] if ablation == "resample" else reference[layer][:, head].mean(
                        0).expand(len(positions), -1)
                z[rows, positions, head * width:(head + 1) * width] = values.to(z.dtype).to(z.device)
            logits = nnsight.save(model.output.logits[rows, positions])
        return logits.float().log_softmax(-1).cpu()

    if ablation == "resample" and any(len(reference[layer]) != len(positions) for layer in reference):
        raise ValueError(f"a resample ablation takes one counterpart per row: {len(positions)} rows, got "
                         f"{[len(reference[layer]) for layer in sorted(reference)]}")
    clean = log_probs()
    table = []
    for layer in range(n_layers):
        for head in range(heads):
            ablated = log_probs(layer, head)
            drop = (clean - ablated)[rows, targets]
            kl = (clean.exp() * (clean - ablated)).sum(-1)
            table.append({"layer": layer, "head": head, "logp_drop": float(drop.mean()), "kl": float(kl.mean())})
    return pd.DataFrame(table)


def attribution_scores(model: Any, input_ids, attention_mask, positions, targets, reference: dict) -> pd.DataFrame:
    """Attribution patching: the first-order estimate of every resample ablation from one forward and one backward.

    The change in the target's log-probability when a head's z at the chosen token is replaced by its counterpart's
    is estimated as grad_z · (z_counterpart - z) (Nanda's attribution patching; Syed et al. 2023). Args as
    ablate_heads with ablation="resample" (reference: head_inputs of one counterpart prompt per row).
    Returns: one row per (layer, head): logp_drop_estimate (clean minus patched, mean over rows, the sign
    ablate_heads uses) and abs_estimate (the mean of its absolute value per row, which cancels less).
    The gradient is read with plain torch hooks on o_proj's input (nothing is edited, so no nnsight trace).
    """
    input_ids, mask, positions = check_token_batch(input_ids, attention_mask, positions, positions_required=True)
    targets = torch.as_tensor(targets)
    if targets.shape != positions.shape:
        raise ValueError(f"targets must be [batch] token ids, one per row; got shape {tuple(targets.shape)}")
    module = torch_module(model)
    n_layers, _ = model_dims(model)
    heads = module.config.num_attention_heads
    if reference is None or sorted(reference) != list(range(n_layers)) or any(
            len(reference[layer]) != len(positions) for layer in reference):
        raise ValueError(f"reference must be head_inputs of one counterpart per row ({len(positions)} rows), one entry "
                         f"per layer 0 .. {n_layers - 1}")
    captured: dict[int, torch.Tensor] = {}

    def keep(layer: int):
        def hook(_module, args):
            z = args[0]
            if not z.requires_grad:  # frozen weights: make the first z a leaf; later ones depend on it
                z = z.detach().requires_grad_()
                captured[layer] = z
                return (z, *args[1:])
            captured[layer] = z
        return hook

    blocks, rows = residual_layers(module), torch.arange(len(positions))
    device = next(module.parameters()).device
    handles = [blocks[layer].self_attn.o_proj.register_forward_pre_hook(keep(layer)) for layer in range(n_layers)]
    try:
        with torch.enable_grad():
            logits = module(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            chosen = logits[rows, positions.to(device)].float().log_softmax(-1)[rows, targets.to(device)]
            grads = torch.autograd.grad(chosen.sum(), [captured[layer] for layer in range(n_layers)])
    finally:
        for handle in handles:
            handle.remove()
    table = []
    for layer, grad in enumerate(grads):
        z = captured[layer].detach()[rows, positions].float().reshape(len(positions), heads, -1).cpu()
        grad = grad[rows, positions].float().reshape(len(positions), heads, -1).cpu()
        change = (grad * (reference[layer].float() - z)).sum(-1)  # [rows, heads] patched minus clean
        for head in range(heads):
            table.append({"layer": layer, "head": head, "logp_drop_estimate": float(-change[:, head].mean()),
                          "abs_estimate": float(change[:, head].abs().mean())})
    return pd.DataFrame(table)


def ablation_truths(effects: pd.DataFrame, column: str = "logp_drop", fractions=(0.5, 0.2, 0.05)) -> dict:
    """Ground-truth circuits at several cut-offs: {fraction: bool [heads]} marking the heads whose effect reaches
    ``fraction`` of the largest head's effect (an empty circuit where no head's effect is positive).

    Relative to the largest effect rather than the top share of heads: when one head carries the behaviour, a top
    share would put heads with effects indistinguishable from zero into the circuit.
    """
    if column not in effects:
        raise ValueError(f"effects has no column {column!r}; it has {', '.join(map(str, effects.columns))}")
    values = effects[column].to_numpy(float)
    fractions = tuple(check_fraction(f) for f in fractions)
    largest = values.max() if len(values) else 0.0
    return {f: (values >= f * largest) & (values > 0) if largest > 0 else np.zeros(len(values), bool)
            for f in fractions}


def check_fraction(value) -> float:
    """A fraction in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 < value <= 1:
        raise ValueError(f"a cut-off fraction must be a number in (0, 1]; got {value!r}")
    return float(value)
