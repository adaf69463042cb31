"""The one precision decision: bf16 only where the hardware runs it natively, a forced choice honoured."""

import pytest
import torch

from tdsae import runtime
from tdsae.runtime import PRECISION_ENV, decide_cpu, matmul_precision

AMX = {"capability": "AVX512", "bf16_flags": ["amx_bf16", "avx512_bf16"], "features_known": True,
       "onednn_bf16": True, "machine": "x86_64"}
AVX2_ONLY = {"capability": "AVX2", "bf16_flags": [], "features_known": True, "onednn_bf16": False,
             "machine": "x86_64"}
# AVX-512 without BF16 instructions (e.g. Skylake-X): oneDNN offers bf16, but emulated; only a measurement tells
AVX512_NO_BF16 = {"capability": "AVX512", "bf16_flags": [], "features_known": True, "onednn_bf16": True,
                  "machine": "x86_64"}


def never_measure():
    raise AssertionError("the capability query was clear: no micro-benchmark should run")


@pytest.fixture
def cpu_as(monkeypatch):
    """Make matmul_precision see the given CPU facts, with a fresh per-process decision."""
    def use(facts, speedup=None):
        monkeypatch.setattr(runtime, "cpu_facts", lambda: dict(facts))
        monkeypatch.setattr(runtime, "measure_bf16_speedup", never_measure if speedup is None else lambda: speedup)
        runtime._decide.cache_clear()
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    yield use
    runtime._decide.cache_clear()


def test_capability_decides_without_measuring():
    assert decide_cpu(AMX, measure=never_measure)[0] is True
    native, reason = decide_cpu(AVX2_ONLY, measure=never_measure)
    assert native is False and "oneDNN has no bf16" in reason
    # torch's kernels limited to AVX2 (ATEN_CPU_CAPABILITY) on a CPU that has the flag: still not native
    limited = {**AMX, "capability": "AVX2", "onednn_bf16": None}
    assert decide_cpu(limited, measure=never_measure)[0] is False


def test_unclear_capability_is_measured():
    assert decide_cpu(AVX512_NO_BF16, measure=lambda: 0.3) == (
        False, "a micro-benchmark found bf16 0.3x as fast as fp32 (bf16 needs 1.5x)")
    assert decide_cpu({**AVX512_NO_BF16, "machine": "aarch64"}, measure=lambda: 2.5)[0] is True


def test_micro_benchmark_stops_at_its_budget(monkeypatch):
    """Each dtype's loop stops once half the budget has passed on the clock it reads (a fake clock that
    moves 1 ms per reading, so the bound is checked without timing this machine)."""
    import itertools
    import types

    readings = itertools.count()
    monkeypatch.setattr(runtime, "time", types.SimpleNamespace(perf_counter=lambda: next(readings) / 1000))
    ratio = runtime.measure_bf16_speedup(budget_s=0.05)
    assert next(readings) <= 2 * (25 + 3) and ratio > 0  # 25 readings in each half-budget, 3 more around each loop


def test_matmul_precision_follows_the_hardware_both_ways(cpu_as):
    cpu_as(AMX)
    choice = matmul_precision("cpu")
    assert (choice.dtype, choice.bf16, choice.torch_dtype, choice.native_bf16) == (
        "bfloat16", True, torch.bfloat16, True)
    cpu_as(AVX2_ONLY)
    choice = matmul_precision("cpu")
    assert (choice.dtype, choice.native_bf16) == ("float32", False)
    assert choice.hardware == "AVX2 (no bf16 instructions)"


@pytest.mark.parametrize("value, dtype", [("fp32", "float32"), ("FLOAT32", "float32"), ("bf16", "bfloat16"),
                                          ("auto", "float32")])
def test_a_forced_precision_is_honoured(cpu_as, monkeypatch, value, dtype):
    cpu_as(AVX2_ONLY)
    monkeypatch.setenv(PRECISION_ENV, value)
    choice = matmul_precision("cpu")
    assert choice.dtype == dtype and choice.native_bf16 is False
    assert ("forced by TDSAE_PRECISION" in choice.reason) == (value != "auto")


def test_bad_precision_or_device_names_value_and_choices(cpu_as, monkeypatch):
    cpu_as(AMX)
    monkeypatch.setenv(PRECISION_ENV, "half")
    with pytest.raises(ValueError, match="TDSAE_PRECISION='half' is not a precision; choose one of: auto, fp32"):
        matmul_precision("cpu")
    monkeypatch.delenv(PRECISION_ENV)
    with pytest.raises(ValueError, match="unknown device 'tpu'; choose one of: auto, cpu, cuda"):
        matmul_precision("tpu")


def test_cuda_without_native_bf16_gets_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    for native, dtype in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(runtime, "cuda_facts", lambda native=native: ("Tesla T4 (sm_75)", native))
        runtime._decide.cache_clear()
        assert matmul_precision("cuda").dtype == dtype
    runtime._decide.cache_clear()


def test_describe_run_shows_hardware_and_precision(cpu_as):
    from tdsae.presets import resolve_settings

    cpu_as(AVX2_ONLY)
    table = runtime.describe_run(resolve_settings("tiny", device="cpu"))
    assert table.loc["matmul precision", "value"] == "float32"
    assert table.loc["hardware", "value"] == "AVX2 (no bf16 instructions)"
    assert "oneDNN" in table.loc["precision reason", "value"]
