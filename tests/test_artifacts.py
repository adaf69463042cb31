import json
from pathlib import Path

import pytest

from tdsae.artifacts import ArtifactError, ArtifactStore, artifact_key, write_json_atomic


def _writer(calls):
    def build(directory):
        calls.append(directory)
        (directory / "weights.bin").write_bytes(b"\x00\x01" * 100)
        (directory / "sub").mkdir()
        (directory / "sub" / "cfg.json").write_text('{"d": 4}')
    return build


def test_built_once_then_reused(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    first = store.load_or_build("organism", {"seed": 0}, _writer(calls))
    second = store.load_or_build("organism", {"seed": 0}, _writer(calls))
    assert first == second and len(calls) == 1
    assert json.loads((first / "manifest.json").read_text())["params"] == {"seed": 0}


def _build_slowly(root, marker):
    """One process asking for an artifact whose build takes a while and leaves a mark (test helper)."""
    import time

    def build(directory):
        with open(marker, "a") as handle:
            handle.write("built\n")
        time.sleep(1.0)
        (directory / "weights.bin").write_bytes(b"\x00" * 10)

    return str(ArtifactStore(Path(root)).load_or_build("organism", {"seed": 0}, build))


def test_processes_asking_for_the_same_missing_artifact_at_once_build_it_once(tmp_path):
    """Chapters side by side: the second process waits for the first's build and loads it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    marker = tmp_path / "builds.txt"
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        paths = list(pool.map(_build_slowly, [tmp_path / "cache"] * 3, [marker] * 3))
    assert len(set(paths)) == 1 and marker.read_text() == "built\n"
    assert (Path(paths[0]) / "weights.bin").read_bytes() == b"\x00" * 10


def test_parameters_change_the_key():
    assert artifact_key("sae", {"layer": 1}) != artifact_key("sae", {"layer": 2})
    assert artifact_key("sae", {"a": 1, "b": 2}) == artifact_key("sae", {"b": 2, "a": 1})


def test_corrupt_file_is_detected_and_rebuilt(tmp_path):
    store, calls = ArtifactStore(tmp_path), []
    path = store.load_or_build("organism", {"seed": 0}, _writer(calls))
    (path / "weights.bin").write_bytes(b"\x01\x00" * 100)  # same size, other bytes
    with pytest.raises(ArtifactError, match=r"weights.bin: sha256 does not match"):
        store.verify("organism", {"seed": 0})
    store.load_or_build("organism", {"seed": 0}, _writer(calls))
    assert len(calls) == 2 and (path / "weights.bin").read_bytes() == b"\x00\x01" * 100


def test_truncated_file_is_caught_by_size_even_above_the_hash_limit(tmp_path, monkeypatch):
    monkeypatch.setattr("tdsae.artifacts.HASH_LIMIT", 10)  # weights.bin (200 bytes) is then size-checked only
    store = ArtifactStore(tmp_path)
    path = store.load_or_build("organism", {"seed": 0}, _writer([]))
    (path / "weights.bin").write_bytes(b"\x01\x00" * 100)
    assert store.verify("organism", {"seed": 0}) == path  # same size: not hashed above the limit
    (path / "weights.bin").write_bytes(b"\x00" * 150)
    with pytest.raises(ArtifactError, match=r"weights.bin: size 150 does not match the manifest's 200"):
        store.verify("organism", {"seed": 0})


def test_mismatched_manifest_params_are_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    path = store.load_or_build("organism", {"seed": 0}, _writer([]))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["params"] = {"seed": 1}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="field 'params' does not match"):
        store.verify("organism", {"seed": 0})


def test_killed_build_leaves_nothing_behind(tmp_path):
    store = ArtifactStore(tmp_path)

    def dies(directory):
        (directory / "half.bin").write_bytes(b"1234")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.load_or_build("organism", {"seed": 0}, dies)
    assert list((tmp_path / "organism").iterdir()) == []
    with pytest.raises(ArtifactError, match="never completed"):
        store.verify("organism", {"seed": 0})


def test_claims_json_written_atomically(tmp_path):
    target = tmp_path / "_build" / "claims.json"
    write_json_atomic(target, [{"a": 1}])
    assert json.loads(target.read_text()) == [{"a": 1}]
    assert [p.name for p in target.parent.iterdir()] == ["claims.json"]


def test_benchmark_results_are_kept_per_machine(tmp_path, monkeypatch):
    """A result lands under its machine's label; another machine's results, and a file written before
    results were kept per machine, survive."""
    from tdsae import artifacts

    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"speedup": 4.3}))
    machines = iter([{"cpu": "Xeon", "hardware": "AVX512 (amx_bf16)", "precision": "bfloat16", "isa_capped_by": {}},
                     {"cpu": "EPYC", "hardware": "AVX2 (no bf16 instructions)", "precision": "float32",
                      "isa_capped_by": {"ATEN_CPU_CAPABILITY": "avx2"}}])
    monkeypatch.setattr(artifacts, "machine_record", lambda device="cpu": next(machines))
    artifacts.write_result_by_machine(path, {"speedup": 6.1})
    content = artifacts.write_result_by_machine(path, {"speedup": 4.2})
    assert json.loads(path.read_text()) == content
    assert {label: entry["speedup"] for label, entry in content["by_machine"].items()} == {
        "earlier run, machine not recorded": 4.3, "Xeon: AVX512 (amx_bf16), bfloat16": 6.1,
        "EPYC: AVX2 (no bf16 instructions), float32, ISA capped by ATEN_CPU_CAPABILITY=avx2": 4.2}


def test_a_verified_artifact_is_not_hashed_again_until_a_file_changes(tmp_path, monkeypatch):
    import tdsae.artifacts as artifacts

    store = ArtifactStore(tmp_path)
    path = store.load_or_build("x", {"a": 1}, lambda tmp: (tmp / "data.bin").write_bytes(b"0123456789"))
    hashed = []
    real = artifacts.file_sha256
    monkeypatch.setattr(artifacts, "file_sha256", lambda p: hashed.append(p) or real(p))
    store.verify("x", {"a": 1})
    assert hashed == []  # verified when it was built, unchanged since
    (path / "data.bin").write_bytes(b"0123456780")  # same size, other content: a new modification time
    with pytest.raises(ArtifactError, match="sha256"):
        store.verify("x", {"a": 1})
    assert hashed  # the change was noticed and the file hashed again
