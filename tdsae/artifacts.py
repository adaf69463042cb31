"""The artifact cache: how chapters share work.

A chapter asks for an artifact (a trained organism, played episodes, harvested
activations, an SAE) by kind and the parameters that shape it. The store
returns the cached directory or builds it first. Each artifact is built in a
temporary directory and renamed into place with a manifest (parameters,
library versions, sha256 of every file), so a killed run never leaves a
half-written artifact, and a corrupt or mismatched one is detected and rebuilt,
never silently used. Processes that ask for the same missing artifact at once
(chapters run side by side) build it once: the first holds a lock on its name
while it builds, and the others wait for it and then load its result.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .runtime import library_versions, machine_label, machine_record

try:  # POSIX file locks; on Windows, where there are none, concurrent builders of one artifact both build it
    import fcntl
except ImportError:  # pragma: no cover - not on the book's platforms
    fcntl = None

HOME_ENV = "TDSAE_HOME"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1  # bump when the layout of any artifact changes, to invalidate old caches
HASH_LIMIT = 256 * 2**20  # bytes: larger files are verified by size at load (hashed when built)


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (one per artifact, under the store's .locks/) while the artifact
    is built. Artifacts that build others inside their build take those locks in dependency order (an artifact
    never depends on itself), so two processes cannot wait for each other. The empty lock file stays: removing it
    could let a third process lock a file just unlinked."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def artifact_home() -> Path:
    """Root of the cache: $TDSAE_HOME, else ``artifacts/`` of a source checkout, else ~/.cache/tdsae."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").exists() and (checkout / "_toc.yml").exists():
        return checkout / "artifacts"
    return Path.home() / ".cache" / "tdsae"


def artifact_key(kind: str, params: dict[str, Any]) -> str:
    """A short stable hash of the kind and the parameters that shape the artifact."""
    canonical = json.dumps({"kind": kind, "params": params, "format": FORMAT_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temporary name beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the result should read like any file
    os.replace(tmp, path)


def write_result_by_machine(path: Path, result: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Store a benchmark result under its machine's label in the JSON at path, keeping other machines' results.

    Returns the whole file's content: {"by_machine": {label: result with its "machine" record}}.
    """

    machine = machine_record(device)
    content: dict[str, Any] = {"by_machine": {}}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
        # a file from before results were kept per machine: kept, under a label that says so
        content = old if "by_machine" in old else {"by_machine": {"earlier run, machine not recorded": old} if old else {}}
    content["by_machine"][machine_label(machine)] = {"machine": machine, **result}
    write_json_atomic(path, content)
    return content


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFIED: dict[str, tuple] = {}  # directory -> the fingerprint it had when this process last verified it


def _fingerprint(directory: Path) -> tuple | None:
    """(name, size, mtime_ns) of every file under a directory, the manifest included; None if it does not exist."""
    if not directory.is_dir():
        return None
    stats = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        stats.append((path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(stats)


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST)


class ArtifactError(RuntimeError):
    """An artifact on disk does not match its manifest or its parameters."""


class ArtifactStore:
    """A directory of artifacts, one subdirectory per kind, one per parameter hash."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else artifact_home()

    def path(self, kind: str, params: dict[str, Any]) -> Path:
        """Where the artifact of this kind and these parameters lives (built or not)."""
        return self.root / kind / artifact_key(kind, params)

    def finished(self, kind: str, params: dict[str, Any]) -> bool:
        """Whether the artifact was completed (its manifest written); cheap: nothing is verified."""
        return (self.path(kind, params) / MANIFEST).exists()

    def verify(self, kind: str, params: dict[str, Any]) -> Path:
        """Return the artifact's path; raise ArtifactError naming the file or field that is wrong.

        A directory this process has already verified is not hashed again while none of its files has changed
        size or modification time (a chapter loads the same store many times; hashing it each time cost
        seconds per chapter)."""
        directory = self.path(kind, params)
        fingerprint = _fingerprint(directory)
        if fingerprint is not None and _VERIFIED.get(str(directory)) == fingerprint:
            return directory
        self._verify(directory, kind, params)
        if fingerprint is not None:
            _VERIFIED[str(directory)] = fingerprint
        return directory

    def _verify(self, directory: Path, kind: str, params: dict[str, Any]) -> None:
        """verify's full check: manifest, parameters, the set of files, sizes and hashes."""
        manifest_path = directory / MANIFEST
        if not manifest_path.exists():
            raise ArtifactError(f"{manifest_path} is missing: the artifact was never completed")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ArtifactError(f"{manifest_path} is not valid JSON: {err}") from None
        expected = json.loads(json.dumps(params, sort_keys=True, default=str))
        if manifest.get("kind") != kind or manifest.get("params") != expected:
            raise ArtifactError(f"{manifest_path}: field 'params' does not match the parameters asked for")
        recorded = manifest.get("files", {})
        present = {p.relative_to(directory).as_posix() for p in _files(directory)}
        if set(recorded) != present:
            raise ArtifactError(f"{directory}: files {sorted(present ^ set(recorded))} differ from the manifest")
        sizes = manifest.get("sizes", {})
        for name, digest in recorded.items():
            path = directory / name
            if name in sizes and path.stat().st_size != sizes[name]:
                raise ArtifactError(f"{path}: size {path.stat().st_size} does not match the manifest's {sizes[name]}")
            # Hashing tens of GB of activations at every load would cost minutes: files above
            # HASH_LIMIT are checked by size, which catches truncation, the usual corruption.
            if (name not in sizes or sizes[name] <= HASH_LIMIT) and file_sha256(path) != digest:
                raise ArtifactError(f"{path}: sha256 does not match the manifest (corrupt file)")

    def load_or_build(self, kind: str, params: dict[str, Any], build: Callable[[Path], None]) -> Path:
        """The artifact's directory, built by ``build(tmp_dir)`` first when missing, corrupt or mismatched.

        Args:
            kind: artifact family, e.g. "organism".
            params: JSON-serialisable parameters that shape the result (the cache key).
            build: writes the artifact's files into the empty directory it is given.
        """
        try:
            return self.verify(kind, params)
        except ArtifactError:
            pass
        target = self.path(kind, params)
        target.parent.mkdir(parents=True, exist_ok=True)
        with _build_lock(self.root / ".locks" / f"{kind}-{target.name}.lock"):
            try:  # another process may have built it while this one waited for the lock
                return self.verify(kind, params)
            except ArtifactError:
                pass
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
            try:
                build(tmp)
                manifest = {
                    "kind": kind,
                    "params": json.loads(json.dumps(params, sort_keys=True, default=str)),
                    "versions": library_versions(),
                    "files": {p.relative_to(tmp).as_posix(): file_sha256(p) for p in _files(tmp)},
                    "sizes": {p.relative_to(tmp).as_posix(): p.stat().st_size for p in _files(tmp)},
                }
                (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
                _VERIFIED[str(target)] = _fingerprint(target)  # just hashed into the manifest; a rename keeps mtimes
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
        return target
