"""The activation store: the residual stream at decision and outcome tokens, on disk, one file per layer.

Layer numbering (the same in every chapter): layer 0 is the embedding output, layer ``l >= 1`` the
output of decoder block ``l - 1`` (TransformerLens ``blocks.{l-1}.hook_resid_post``; nnsight
``model.model.layers[l-1].output``). A store holds one ``[n_rows, d_model]`` array per layer and an
index aligning every row to (experiment, episode, step, kind), where kind is ``"decision"`` (the
token the choice is read at) or ``"outcome"`` (the token that reveals the step's result).

Layout of a store directory (written under a temporary name and renamed, so a killed harvest
leaves nothing that looks finished)::

    store.json          n_rows, d_model, layers, dtype, model, task, hook names
    index.npz           one array per column, one element per entry: row, experiment, episode, step,
                        column, kind, position (``store.index`` reads it as a DataFrame)
    layer_00.npy ...    [n_rows, d_model] float32 arrays, one per layer, opened memory-mapped

Both are binary because harvesting must cost little more than the forward pass itself: a CSV index
of the graph task's 120,000 entries took longer to write than its five layers of activations.

Peak memory is one batch of gathered rows for every layer, bounded by ``buffer_mb`` whatever the
number of layers, so 80 layers x 18,000 x 8,192 values stream to disk without ever being in RAM.
"""

from __future__ import annotations

import json
import numbers
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

STORE_FILE = "store.json"
INDEX_FILE = "index.npz"
KINDS = ("decision", "outcome")
INDEX_COLUMNS = ("row", "experiment", "episode", "step", "column", "kind", "position")


class ActivationStoreError(ValueError):
    """A store on disk is incomplete or inconsistent; the message names the file and the field."""


def layer_file(layer: int) -> str:
    """File name of one layer's array."""
    return f"layer_{int(layer):02d}.npy"


def rows_of(played, kinds=KINDS) -> pd.DataFrame:
    """The index of a harvest: one row per valid step and kind, in (experiment, column, kind) order.

    Args: played: a tdsae.play.PlayResult; kinds: subset of ("decision", "outcome").
    Returns: DataFrame with INDEX_COLUMNS; ``position`` is the token index in the experiment's
    sequence (its transcript, or its story); ``row`` is the stored vector, numbered in order of first
    appearance and shared by entries that read the same token.
    Steps whose position is unknown (-1, e.g. the last outcome of a story) are left out.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown position kinds {unknown or kinds!r}; choose from {', '.join(KINDS)}")
    traj = played.trajectory
    experiment, column = np.nonzero(traj.valid)
    frames = []
    for order, kind in enumerate(k for k in KINDS if k in kinds):
        position = (played.decision_pos if kind == "decision" else played.outcome_pos)[experiment, column]
        frames.append(pd.DataFrame({"experiment": experiment, "episode": traj.episode[experiment, column],
                                    "step": traj.step[experiment, column], "column": column, "kind": kind,
                                    "position": position, "_order": order}))
    table = pd.concat(frames).query("position >= 0").sort_values(["experiment", "column", "_order"], kind="stable")
    table = table.drop(columns="_order").reset_index(drop=True)
    # One stored vector per (experiment, token): where an outcome token is also the next decision's
    # (the planet in a Two-Step transcript, the next node of a walk) both entries share a row.
    table.insert(0, "row", table.groupby(["experiment", "position"], sort=False).ngroup().to_numpy())
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
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or int(layer) not in self.layers:
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
