"""Harvest the residual stream at decision and outcome tokens into a store (tdsae.activations.store).

Each experiment's finished sequence (the organism's transcript, or a pretrained model's story) is read
once, right-padded; the causal mask makes position p see exactly what the model saw when it played
that step. Rows are gathered inside one nnsight trace per batch, with optional latent edits applied
in the same pass, and appended to one .npy file per layer.

A pretrained model's story play can keep the same vectors from its own cached forward passes
(tdsae.play.play_stories' ``residual_layers``); store_played_residuals writes them in the same
layout, so a story is read once, not twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tdsae.activations.store import INDEX_FILE, KINDS, STORE_FILE, ActivationStore, layer_file, rows_of, write_index
from tdsae.models import check_edits, check_layer, is_remote, model_dims, residual_sites, site_hook_names, torch_module
from tdsae.play.result import played_token_ids
from tdsae.runtime import tqdm

PLAYED_ROWS_PER_READ = 4096  # rows of a play's kept residual stream read back at once (x 31 x 576 floats: 290 MB)


def batch_experiments(counts: np.ndarray, n_layers: int, d_model: int, buffer_mb: float) -> list[np.ndarray]:
    """Split experiments into batches whose gathered rows x layers x d_model fit buffer_mb (float32).

    Args: counts: [n_experiments] stored vectors each experiment contributes. Returns: index arrays.
    """
    per_row = 4 * (n_layers + 1) * d_model
    budget = max(1, int(buffer_mb * 2**20 // per_row))
    batches, current, used = [], [], 0
    for e, count in enumerate(counts):
        if current and used + count > budget:
            batches.append(np.array(current))
            current, used = [], 0
        current.append(e)
        used += int(count)
    if current:
        batches.append(np.array(current))
    return batches


class _ArrayWriter:
    """Writes a [n_rows, d_model] float32 .npy file front to back, one block of consecutive rows at a time."""

    def __init__(self, path: Path, n_rows: int, d_model: int) -> None:
        self.path, self.n_rows, self.written = path, n_rows, 0
        self.file = open(path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (n_rows, d_model)}
        np.lib.format.write_array_header_1_0(self.file, header)

    def write(self, first_row: int, values: np.ndarray) -> None:
        """Append rows first_row .. first_row + len(values) - 1, which must follow those already written."""
        if first_row != self.written:
            raise RuntimeError(f"{self.path}: rows must arrive in order; got row {first_row} after {self.written}")
        self.file.write(np.ascontiguousarray(values, dtype=np.float32).data)
        self.written += len(values)

    def __enter__(self) -> "_ArrayWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()
        if exc[0] is None and self.written != self.n_rows:
            raise RuntimeError(f"{self.path}: {self.written} rows written, {self.n_rows} expected")


def played_position_mask(played, experiments, length: int, kinds=KINDS) -> torch.Tensor:
    """Where the store's tokens sit in played_token_ids' rows: [n, length] bool, True at every
    decision and outcome token of the given experiments."""
    mask = torch.zeros((len(experiments), length), dtype=torch.bool)
    for i, e in enumerate(experiments):
        for kind in kinds:
            positions = (played.decision_pos if kind == "decision" else played.outcome_pos)[e]
            mask[i, positions[positions >= 0]] = True
    return mask


def harvest_activations(model: Any, played, directory, layers=None, kinds=KINDS, buffer_mb: float = 256,
                        progress: bool = True, after_batch=None, edits=None) -> ActivationStore:
    """Run the model over what it played and store the residual stream at the chosen tokens.

    Each experiment's finished sequence (transcript or story tokens) is one row of a batch; the
    causal mask makes position p see exactly the tokens the model saw when it played that step.

    Args:
        model: a tdsae.models.load_model result (an nnsight model).
        played: the PlayResult of that model (or of any agent rendered the same way).
        directory: where the store goes; replaced if it exists.
        layers: residual layers to keep (default all, 0..n_layers).
        kinds: position kinds to keep; buffer_mb: bound on the gathered rows held in memory.
        after_batch: called with the batch number after each batch is written (tests use it).
        edits: tdsae.interventions.LatentEdits applied in the same forward pass (later layers then
            show their effect; the edited layer itself is stored after its edit).
    Returns: the finished ActivationStore.
    """
    import nnsight

    n_layers, d_model = model_dims(model)
    layers = list(range(n_layers + 1)) if layers is None else sorted({check_layer(model, l) for l in layers})
    edits = check_edits(model, edits)
    index = rows_of(played, kinds)
    vectors = index.drop_duplicates("row")
    batches = batch_experiments(vectors.groupby("experiment").size().reindex(
        np.arange(played.trajectory.n_experiments), fill_value=0).to_numpy(), n_layers, d_model, buffer_mb)
    sites = residual_sites(model)
    device = next(torch_module(model).parameters()).device
    last = max(layers + [e.layer for e in edits])
    quiet = {} if progress else {"disable": True}  # passing disable=False would override TQDM_DISABLE

    def fill(writers: dict) -> None:
        for number, batch in enumerate(tqdm(batches, desc="harvest", unit="batch", **quiet)):
            inputs, picks, rows = _sequence_inputs(model, played, vectors, batch)
            inputs = {k: v.to(device) for k, v in inputs.items()}
            b_idx, p_idx = picks[0].to(device), picks[1].to(device)
            with torch.no_grad(), model.trace(**inputs, remote=is_remote(model)) as tracer:
                gathered = []
                for layer in range(last + 1):  # forward order, as nnsight needs
                    for edit in (e for e in edits if e.layer == layer):
                        sites[layer].output = edit.apply(sites[layer].output)
                    if layer in layers:
                        gathered.append(sites[layer].output[b_idx, p_idx])
                gathered = nnsight.save(gathered)
                tracer.stop()  # the final norm and the unembedding are not needed (at 128k words, costly)
            for l, values in zip(layers, gathered):
                writers[l].write(int(rows[0]), values.float().cpu().numpy())
            if after_batch is not None:
                after_batch(number)

    return _write_store(directory, index, d_model, layers, _store_meta(model, played, layers), fill)


def store_played_residuals(model: Any, played, directory, kinds=KINDS) -> ActivationStore:
    """The store harvest_activations would write for a model's own play, from the residual stream kept
    during that play (story play's ``residual_layers``): no second pass over the stories.

    The vectors come from the cached feeds of play rather than one forward of each whole story, so they
    agree with harvest_activations' to float rounding (about 1e-5), not bit for bit.

    Args: model: the tdsae.models.load_model result that played; played: its PlayResult, with residuals;
    directory: where the store goes (replaced if it exists). Returns: the finished ActivationStore.
    """
    kept = played.residuals
    if kept is None:
        raise ValueError("this PlayResult kept no residual stream; play with residual_layers=..., or harvest it "
                         "with harvest_activations")
    _, d_model = model_dims(model)
    width = kept.values.shape[2]
    if width != d_model:
        raise ValueError(f"the kept residual stream is {width} wide, but this model's d_model is {d_model}: "
                         "it was played by another model")
    index = rows_of(played, kinds)
    vectors = index.drop_duplicates("row")
    keys = list(zip(vectors.experiment.to_numpy().tolist(), vectors.position.to_numpy().tolist()))
    missing = [key for key in keys if key not in kept.rows]
    if missing:
        raise ValueError(f"no residual stream was kept at {len(missing)} (experiment, token) pairs, e.g. "
                         f"{missing[0]}; the PlayResult and its residuals do not belong together")
    layers = list(kept.layers)

    def fill(writers: dict) -> None:
        for start in range(0, len(keys), PLAYED_ROWS_PER_READ):  # one pass over the kept file, a block at a time
            block = kept.at(keys[start:start + PLAYED_ROWS_PER_READ])  # [rows, layers, d_model]
            for i, layer in enumerate(layers):
                writers[layer].write(start, block[:, i])

    return _write_store(directory, index, d_model, layers, _store_meta(model, played, layers), fill)


def _store_meta(model, played, layers) -> dict:
    """What a store records about its reader and what it read."""
    return {"model": str(getattr(torch_module(model).config, "_name_or_path", "")),
            "task": played.trajectory.task, "mode": "story" if played.prompts else "transcript",
            "hook_names": {str(l): list(site_hook_names(model, l)) for l in layers}}


def _write_store(directory, index: pd.DataFrame, d_model: int, layers: list[int], meta: dict, fill) -> ActivationStore:
    """Write a store under a temporary name and rename it into place: ``fill(writers)`` writes each layer's
    rows in order through writers {layer: _ArrayWriter}; the index and store.json follow."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        n_rows = int(index.row.max()) + 1 if len(index) else 0
        with contextlib.ExitStack() as files:
            # Plain sequential writes, not a writable memory map: batches hold consecutive rows in order,
            # and first-touch page faults made a memory map several times slower to fill.
            fill({l: files.enter_context(_ArrayWriter(tmp / layer_file(l), n_rows, d_model)) for l in layers})
        # No fsync: the page cache outlives a killed process, and the rename below is what marks
        # the store finished; forcing the write-back would only stall the next harvest.
        write_index(index, tmp / INDEX_FILE)
        meta = {"n_rows": n_rows, "d_model": d_model, "layers": layers, "dtype": "float32", **meta}
        (tmp / STORE_FILE).write_text(json.dumps(meta, indent=2))  # written last: marks the store finished
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ActivationStore(directory, index=index)


def _sequence_inputs(model, played, vectors: pd.DataFrame, experiments: np.ndarray):
    """Right-padded ids of the batch's sequences and the (sequence, position) of each stored row."""
    ids = played_token_ids(model.tokenizer, played, experiments)
    part = vectors[vectors.experiment.isin(experiments)]
    sequence = np.searchsorted(experiments, part.experiment.to_numpy())
    picks = (torch.tensor(sequence), torch.tensor(part.position.to_numpy()))
    return {"input_ids": ids}, picks, part.row.to_numpy()
