"""Harvest the residual stream at decision and outcome tokens into a disk-backed store.

Layer numbering (the same in every chapter): layer 0 is the embedding output, layer ``l >= 1`` the
output of decoder block ``l - 1`` (TransformerLens ``blocks.{l-1}.hook_resid_post``; nnsight
``model.model.layers[l-1].output``). A store holds one ``[n_rows, d_model]`` array per layer and an
index aligning every row to (experiment, episode, step, kind), where kind is ``"decision"`` (the
token the choice is read at) or ``"outcome"`` (the token that reveals the step's result).

Layout of a store directory (written under a temporary name and renamed, so a killed harvest
leaves nothing that looks finished)::

    store.json          n_rows, d_model, layers, dtype, model, task, hook names
    index.npz           one array per column, one element per entry: row, experiment, episode, step,
                        column, kind, prompt, position (``store.index`` reads it as a DataFrame)
    layer_00.npy ...    [n_rows, d_model] float32 arrays, one per layer, opened memory-mapped

Both are binary because harvesting must cost little more than the forward pass itself: a CSV index
of the graph task's 120,000 entries took longer to write than its five layers of activations.

Peak memory is one batch of gathered rows for every layer, bounded by ``buffer_mb`` whatever the
number of layers, so 80 layers x 18,000 x 8,192 values stream to disk without ever being in RAM.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

STORE_FILE = "store.json"
INDEX_FILE = "index.npz"
KINDS = ("decision", "outcome")
INDEX_COLUMNS = ("row", "experiment", "episode", "step", "column", "kind", "prompt", "position")


class ActivationStoreError(ValueError):
    """A store on disk is incomplete or inconsistent; the message names the file and the field."""


def layer_file(layer: int) -> str:
    """File name of one layer's array."""
    return f"layer_{int(layer):02d}.npy"


def rows_of(played, kinds=KINDS) -> pd.DataFrame:
    """The index of a harvest: one row per valid step and kind, in (experiment, column, kind) order.

    Args: played: a tdsae.play.PlayResult; kinds: subset of ("decision", "outcome").
    Returns: DataFrame with INDEX_COLUMNS; ``position`` is the token index in the experiment's
    transcript (transcript mode, ``prompt`` 0) or in its prompt number ``prompt`` (story mode: see
    harvest_activations); ``row`` is
    the stored vector, numbered in order of first appearance and shared by entries that read the
    same token.
    Steps whose position is unknown (-1, e.g. the last outcome of a story) are left out.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown position kinds {unknown or kinds!r}; choose from {', '.join(KINDS)}")
    traj = played.trajectory
    experiment, column = np.nonzero(traj.valid)
    story = not played.tokens
    rank = (np.cumsum(traj.valid, axis=1) - 1)[experiment, column]  # a step's prompt in story mode
    frames = []
    for order, kind in enumerate(k for k in KINDS if k in kinds):
        position = (played.decision_pos if kind == "decision" else played.outcome_pos)[experiment, column]
        prompt = rank + (kind == "outcome") if story else np.zeros_like(rank)
        frames.append(pd.DataFrame({"experiment": experiment, "episode": traj.episode[experiment, column],
                                    "step": traj.step[experiment, column], "column": column, "kind": kind,
                                    "prompt": prompt, "position": position, "_order": order}))
    table = pd.concat(frames).query("position >= 0").sort_values(["experiment", "column", "_order"], kind="stable")
    table = table.drop(columns="_order").reset_index(drop=True)
    # One stored vector per (experiment, token): where an outcome token is also the next decision's
    # (the planet in Two-Step, the next node of a walk) both entries share a row.
    table.insert(0, "row", table.groupby(["experiment", "prompt", "position"], sort=False).ngroup().to_numpy())
    return table


class ActivationStore:
    """A finished store: ``acts(layer)`` is a read-only memory map ``[n_rows, d_model]``."""

    def __init__(self, directory, index: pd.DataFrame | None = None) -> None:
        """Open and check a store; ``index`` skips re-reading the index when the caller just wrote it."""
        self.directory = Path(directory)
        self.meta = read_store_meta(self.directory)
        self.n_rows, self.d_model = int(self.meta["n_rows"]), int(self.meta["d_model"])
        self.layers = tuple(int(layer) for layer in self.meta["layers"])
        self.index = read_index(self.directory, self.n_rows) if index is None else index
        for layer in self.layers:
            self._open(layer)  # every layer file is checked before any work starts

    def _open(self, layer: int) -> np.ndarray:
        path = self.directory / layer_file(layer)
        if not path.exists():
            raise ActivationStoreError(f"{path} is missing: store.json lists layer {layer}")
        try:
            array = np.load(path, mmap_mode="r")
        except ValueError as error:
            raise ActivationStoreError(f"{path} is not a readable .npy array: {error}") from None
        if array.shape != (self.n_rows, self.d_model):
            raise ActivationStoreError(f"{path}: shape {array.shape} does not match store.json "
                                       f"n_rows={self.n_rows}, d_model={self.d_model}")
        return array

    def acts(self, layer: int, rows=None) -> np.ndarray:
        """Activations of one layer, all rows or ``rows`` (int indices) [n, d_model] float32."""
        if int(layer) not in self.layers:
            raise ValueError(f"layer {layer!r} is not in this store; it holds layers {list(self.layers)}")
        array = self._open(int(layer))
        return array if rows is None else np.asarray(array[np.asarray(rows)], dtype=np.float32)

    def rows(self, kind: str) -> np.ndarray:
        """Row numbers of one position kind, in index order."""
        if kind not in KINDS:
            raise ValueError(f"unknown position kind {kind!r}; choose from {', '.join(KINDS)}")
        return self.index.loc[self.index.kind == kind, "row"].to_numpy()

    def hook_names(self, layer: int) -> tuple[str, str]:
        """(TransformerLens hook name, HF module path) of a layer, as recorded at harvest time."""
        return tuple(self.meta["hook_names"][str(int(layer))])


def read_store_meta(directory: Path) -> dict:
    """store.json of a store, checked for the fields every reader relies on."""
    path = Path(directory) / STORE_FILE
    if not Path(directory).is_dir():
        raise ActivationStoreError(f"activation store {str(directory)!r} does not exist")
    if not path.exists():
        raise ActivationStoreError(f"{path} is missing: the harvest never finished")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ActivationStoreError(f"{path} is not valid JSON: {error}") from None
    for key in ("n_rows", "d_model", "layers", "hook_names"):
        if key not in meta:
            raise ActivationStoreError(f"{path}: field {key!r} is missing")
    return meta


def read_index(directory: Path, n_rows: int) -> pd.DataFrame:
    """index.npz of a store; its rows must be 0..n_rows-1, each used, in order of first appearance."""
    path = Path(directory) / INDEX_FILE
    if not path.exists():
        raise ActivationStoreError(f"{path} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            columns = {name: data[name] for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ActivationStoreError(f"{path} is not a readable .npz index: {error}") from None
    missing = [c for c in INDEX_COLUMNS if c not in columns]
    if missing:
        raise ActivationStoreError(f"{path}: columns {missing} are missing")
    if len({len(values) for values in columns.values()}) > 1:
        raise ActivationStoreError(f"{path}: columns have different lengths "
                                   f"{ {name: len(values) for name, values in columns.items()} }")
    index = pd.DataFrame({c: columns[c] for c in INDEX_COLUMNS})
    index["kind"] = index["kind"].astype(str).astype(object)
    first_seen = index["row"].drop_duplicates().to_numpy()
    if not np.array_equal(first_seen, np.arange(n_rows)):
        raise ActivationStoreError(f"{path}: field 'row' refers to {len(first_seen)} vectors that do not number "
                                   f"0..{n_rows - 1} as store.json's n_rows={n_rows} says")
    return index


def write_index(index: pd.DataFrame, path: Path) -> None:
    """Write an index as read_index reads it: one array per column, ``kind`` as fixed-width text."""
    columns = {c: index[c].to_numpy() for c in INDEX_COLUMNS}
    columns["kind"] = columns["kind"].astype(str)
    np.savez(path, **columns)


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


def harvest_activations(model: Any, played, directory, layers=None, kinds=KINDS, buffer_mb: float = 256,
                        progress: bool = True, after_batch=None, edits=None) -> ActivationStore:
    """Run the model over what it played and store the residual stream at the chosen tokens.

    Transcript mode (the organism): each experiment's finished transcript is one sequence; the
    causal mask makes position p see exactly the tokens the model saw when it played that step.
    Story mode (pretrained LMs): the decision row of a step is the last token of its own prompt,
    the outcome row the token that reveals its result in the next prompt (play records both).

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

    from tdsae.interventions import check_edits
    from tdsae.models import check_layer, is_remote, model_dims, residual_sites, site_hook_names, torch_module

    n_layers, d_model = model_dims(model)
    layers = list(range(n_layers + 1)) if layers is None else sorted({check_layer(model, l) for l in layers})
    edits = check_edits(model, edits)
    index = rows_of(played, kinds)
    story = not played.tokens
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        n_rows = int(index.row.max()) + 1 if len(index) else 0
        vectors = index.drop_duplicates("row")
        batches = _story_batches(vectors, buffer_mb, n_layers, d_model) if story else \
            batch_experiments(vectors.groupby("experiment").size().reindex(
                np.arange(played.trajectory.n_experiments), fill_value=0).to_numpy(), n_layers, d_model, buffer_mb)
        from tqdm.auto import tqdm

        sites = residual_sites(model)
        device = next(torch_module(model).parameters()).device
        last = max(layers + [e.layer for e in edits])
        quiet = {} if progress else {"disable": True}  # passing disable=False would override TQDM_DISABLE
        with contextlib.ExitStack() as files:
            # Plain sequential writes, not a writable memory map: batches hold consecutive rows in order,
            # and first-touch page faults made a memory map several times slower to fill.
            writers = {l: files.enter_context(_ArrayWriter(tmp / layer_file(l), n_rows, d_model)) for l in layers}
            for number, batch in enumerate(tqdm(batches, desc="harvest", unit="batch", **quiet)):
                inputs, picks, rows = (_story_inputs if story else _transcript_inputs)(model, played, vectors, batch)
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
        # No fsync: the page cache outlives a killed process, and the rename below is what marks
        # the store finished; forcing the write-back would only stall the next harvest.
        write_index(index, tmp / INDEX_FILE)
        meta = {"n_rows": n_rows, "d_model": d_model, "layers": layers, "dtype": "float32",
                "model": str(getattr(torch_module(model).config, "_name_or_path", "")),
                "task": played.trajectory.task, "mode": "story" if story else "transcript",
                "hook_names": {str(l): list(site_hook_names(model, l)) for l in layers}}
        (tmp / STORE_FILE).write_text(json.dumps(meta, indent=2))  # written last: marks the store finished
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return ActivationStore(directory, index=index)


def _transcript_inputs(model, played, vectors: pd.DataFrame, experiments: np.ndarray):
    """Right-padded ids of the batch's transcripts and the (sequence, position) of each stored row."""
    vocab = model.tokenizer.get_vocab()
    tokens = [played.tokens[e] for e in experiments]
    ids = torch.full((len(tokens), max(len(t) for t in tokens)), model.tokenizer.pad_token_id, dtype=torch.long)
    for i, words in enumerate(tokens):
        ids[i, : len(words)] = torch.tensor([vocab[w] for w in words])
    part = vectors[vectors.experiment.isin(experiments)]
    sequence = np.searchsorted(experiments, part.experiment.to_numpy())
    picks = (torch.tensor(sequence), torch.tensor(part.position.to_numpy()))
    return {"input_ids": ids}, picks, part.row.to_numpy()


def _story_batches(vectors: pd.DataFrame, buffer_mb: float, n_layers: int, d_model: int) -> list[np.ndarray]:
    """Batches of stored rows for story mode, at most 16 prompts each and within buffer_mb."""
    limit = max(1, min(16, int(buffer_mb * 2**20 // (4 * (n_layers + 1) * d_model))))
    rows = vectors.row.to_numpy()
    return [rows[i:i + limit] for i in range(0, len(rows), limit)]


def _story_inputs(model, played, vectors: pd.DataFrame, rows: np.ndarray):
    """Left-padded prompts of a batch of story rows and the (prompt, position) of each row.

    A decision row reads its own prompt; an outcome row reads the next prompt of its experiment,
    where play_stories recorded the token that reveals the outcome.
    """
    part = vectors.set_index("row").loc[rows]
    prompts = [played.prompts[e][p] for e, p in zip(part.experiment, part.prompt)]
    positions = part.position.to_numpy()
    tokenizer = model.tokenizer
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    pads = (1 - batch["attention_mask"]).sum(1)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "position_ids": (batch["attention_mask"].cumsum(1) - 1).clamp(min=0)}
    picks = (torch.arange(len(prompts)), pads + torch.tensor(positions.copy()))
    return inputs, picks, rows



@torch.no_grad()
def max_difference_from_forward(model: Any, played, store: ActivationStore, experiments=(0,)) -> float:
    """Largest |stored - recomputed| over the given experiments' rows, recomputing each sequence alone
    with a plain forward (``output_hidden_states=True``), outside nnsight.

    Layers 0..n_layers-1 are compared: HF applies the final norm to its last hidden state, which
    the store (the raw output of the last block) does not.
    """
    from tdsae.models import model_dims, torch_module

    hf, (n_layers, _) = torch_module(model), model_dims(model)
    device = next(hf.parameters()).device
    layers = [l for l in store.layers if l < n_layers]
    worst = 0.0
    for e in experiments:
        part = store.index[store.index.experiment == e].drop_duplicates("row")
        for prompt, entries in part.groupby("prompt"):
            if played.tokens:
                vocab = model.tokenizer.get_vocab()
                ids = torch.tensor([[vocab[w] for w in played.tokens[e]]])
            else:
                ids = model.tokenizer(played.prompts[e][prompt], return_tensors="pt")["input_ids"]
            hidden = hf(input_ids=ids.to(device), output_hidden_states=True).hidden_states
            positions = torch.tensor(entries.position.to_numpy().copy(), device=device)
            for layer in layers:
                recomputed = hidden[layer][0, positions].float().cpu().numpy()
                worst = max(worst, float(np.abs(store.acts(layer, entries.row) - recomputed).max()))
    return worst


def played_token_ids(model: Any, played, experiments) -> torch.Tensor:
    """What the model read in the given experiments as right-padded ids [n, max_len] (pad_token_id):
    the whole transcript (organism), or the last prompt, which holds the whole history (stories)."""
    tokenizer = model.tokenizer
    if played.tokens:
        vocab = tokenizer.get_vocab()
        sequences = [[vocab[w] for w in played.tokens[e]] for e in experiments]
    else:
        sequences = [tokenizer(played.prompts[e][-1])["input_ids"] for e in experiments]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.full((len(sequences), max(map(len, sequences))), pad, dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = torch.tensor(sequence)
    return ids


def played_position_mask(played, experiments, length: int, kinds=KINDS) -> torch.Tensor:
    """Where the store's tokens sit in played_token_ids' rows: [n, length] bool, True at every
    decision and outcome token of the given experiments (transcript mode only)."""
    if not played.tokens:
        raise ValueError("position masks need transcripts; story-mode rows come from many prompts")
    mask = torch.zeros((len(experiments), length), dtype=torch.bool)
    for i, e in enumerate(experiments):
        for kind in kinds:
            positions = (played.decision_pos if kind == "decision" else played.outcome_pos)[e]
            mask[i, positions[positions >= 0]] = True
    return mask
