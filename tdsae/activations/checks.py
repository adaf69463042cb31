"""Checks of a harvested store against a plain forward pass, and the token ids and positions it was read at."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdsae.activations.store import KINDS, ActivationStore
from tdsae.models import model_dims, torch_module
from tdsae.validation import check_int


@torch.no_grad()
def max_difference_from_forward(model: Any, played, store: ActivationStore, experiments=(0,)) -> float:
    """Largest |stored - recomputed| over the given experiments' rows, recomputing each sequence alone
    with a plain forward (``output_hidden_states=True``), outside nnsight.

    Layers 0..n_layers-1 are compared: HF applies the final norm to its last hidden state, which
    the store (the raw output of the last block) does not.
    """
    n_experiments = played.trajectory.n_experiments
    experiments = [check_int(e, "experiment", 0) for e in experiments]
    if any(e >= n_experiments for e in experiments):
        raise ValueError(f"experiments {experiments} are not all among the {n_experiments} played "
                         f"(0..{n_experiments - 1})")
    hf, (n_layers, _) = torch_module(model), model_dims(model)
    device = next(hf.parameters()).device
    layers = [l for l in store.layers if l < n_layers]
    worst = 0.0
    for e in experiments:
        entries = store.index[store.index.experiment == e].drop_duplicates("row")
        ids = played_token_ids(model, played, [e])
        hidden = hf(input_ids=ids.to(device), output_hidden_states=True).hidden_states
        positions = torch.tensor(entries.position.to_numpy().copy(), device=device)
        for layer in layers:
            recomputed = hidden[layer][0, positions].float().cpu().numpy()
            worst = max(worst, float(np.abs(store.acts(layer, entries.row) - recomputed).max()))
    return worst


def played_token_ids(model: Any, played, experiments) -> torch.Tensor:
    """What the model read in the given experiments as right-padded ids [n, max_len] (pad_token_id, or
    the end-of-text token where there is none): the whole transcript (organism) or story (pretrained)."""
    tokenizer = model.tokenizer
    vocab = tokenizer.get_vocab()
    sequences = [[vocab[w] for w in played.tokens[e]] for e in experiments]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(sequences), max(map(len, sequences))), pad, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = torch.tensor(sequence)
    return ids


def played_position_mask(played, experiments, length: int, kinds=KINDS) -> torch.Tensor:
    """Where the store's tokens sit in played_token_ids' rows: [n, length] bool, True at every
    decision and outcome token of the given experiments."""
    mask = torch.zeros((len(experiments), length), dtype=torch.bool)
    for i, e in enumerate(experiments):
        for kind in kinds:
            positions = (played.decision_pos if kind == "decision" else played.outcome_pos)[e]
            mask[i, positions[positions >= 0]] = True
    return mask
