"""Checks of a harvested store against a plain forward pass of what was played."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tdsae.play.result import played_token_ids
from tdsae.activations.store import ActivationStore
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
        ids = played_token_ids(model.tokenizer, played, [e])
        hidden = hf(input_ids=ids.to(device), output_hidden_states=True).hidden_states
        positions = torch.tensor(entries.position.to_numpy().copy(), device=device)
        for layer in layers:
            recomputed = hidden[layer][0, positions].float().cpu().numpy()
            worst = max(worst, float(np.abs(store.acts(layer, entries.row) - recomputed).max()))
    return worst
