"""The residual stream at decision and outcome tokens, harvested once into a disk-backed store.

    store = harvest_activations(model, played, "artifacts/store")   # nnsight, every layer
    store.acts(3)           # [n_rows, d_model] memory-mapped; store.index aligns rows to steps
    store = store_played_residuals(model, played, "artifacts/store")  # story play that kept its residuals
    vectors = head_results(model, input_ids, attention_mask)         # each attention head's result (chapter 13)

Modules: store (the format, its index, reading), harvest (the forward passes), checks (against a plain
forward; the ids and positions the store was read at), heads (what each attention head writes into the stream).
"""

from tdsae.activations.checks import max_difference_from_forward
from tdsae.activations.heads import head_results
from tdsae.activations.harvest import (batch_experiments, harvest_activations, played_position_mask,
                                      store_played_residuals)
from tdsae.play.result import played_token_ids  # what a store was read from; chapters find it here
from tdsae.activations.store import KINDS, ActivationStore, ActivationStoreError, layer_file, rows_of

__all__ = ["KINDS", "ActivationStore", "ActivationStoreError", "batch_experiments", "harvest_activations",
           "head_results", "layer_file", "max_difference_from_forward", "played_position_mask", "played_token_ids", "rows_of",
           "store_played_residuals"]
