"""Where a run happens: device, matmul precision, and the versions a chapter reports.

Precision is decided here and nowhere else. bf16 matrix products are ~7x faster than fp32 on a CPU
with AMX, ~3x on one with AVX-512 BF16, and ~170x *slower* on one with AVX2 only, where oneDNN
has no bf16 kernels (all measured on this project's machines). So every bf16 use (organism
training, the SAE trainer's encoder, model weights on CUDA) asks :func:`matmul_precision`, which
says bf16 only where the hardware runs it natively. ``TDSAE_PRECISION=fp32`` (or ``bf16``) forces
a choice; the choice is part of the cache key of every artifact it shapes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any

with warnings.catch_warnings():  # without ipywidgets tqdm.auto warns at import; its text bars are fine in a notebook
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm

__all__ = ["tqdm"]  # the progress bar every long loop of the package uses, imported once without the warning

REPORTED_LIBRARIES = ("tdsae", "torch", "transformers", "nnsight", "numpy", "scipy", "pandas", "scikit-learn")
PRECISION_ENV = "TDSAE_PRECISION"
PRECISION_NAMES = {"auto": None, "fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16"}
BF16_MIN_SPEEDUP = 1.5  # the micro-benchmark picks bf16 only when it is at least this much faster than fp32


def pick_device(preference: str = "auto") -> str:
    """Return "cuda" when asked for or available under "auto", else "cpu".

    Raises ValueError for an unknown preference, and RuntimeError when CUDA is
    requested on a machine without it.
    """
    import torch

    if preference not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {preference!r}; choose one of: auto, cpu, cuda")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA device; use 'auto' or 'cpu'")
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS reports one, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries a result depends on."""
    versions = {"python": platform.python_version()}
    for name in REPORTED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def describe_run(settings: Any) -> "Any":
    """A two-column pandas DataFrame of resolved settings, device and library versions."""
    import pandas as pd

    rows: dict[str, Any] = dict(dataclasses.asdict(settings))
    rows["resolved device"] = pick_device(settings.device)
    rows.update(describe_precision(rows["resolved device"]))
    rows.update({f"version: {k}": v for k, v in library_versions().items()})
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


@dataclass(frozen=True)
class Precision:
    """The dtype chosen for matrix products on one device, and why."""

    device: str  # "cpu" or "cuda"
    dtype: str  # "bfloat16" or "float32"
    hardware: str  # what the device offers, e.g. "AVX512 (avx512_bf16)" or "NVIDIA H200 (sm_90)"
    reason: str  # one sentence: why this dtype
    native_bf16: bool  # the hardware's own verdict, whatever TDSAE_PRECISION forces

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @property
    def bf16(self) -> bool:
        return self.dtype == "bfloat16"


def forced_precision() -> str | None:
    """The dtype TDSAE_PRECISION forces ("float32" or "bfloat16"), or None when unset or "auto".

    Raises ValueError naming the value and the allowed ones.
    """
    value = os.environ.get(PRECISION_ENV, "auto").strip().lower() or "auto"
    if value not in PRECISION_NAMES:
        raise ValueError(f"{PRECISION_ENV}={os.environ[PRECISION_ENV]!r} is not a precision; "
                         f"choose one of: {', '.join(PRECISION_NAMES)}")
    return PRECISION_NAMES[value]


def matmul_precision(device: str = "cpu") -> Precision:
    """The dtype that is fast for matrix products on device ("cpu" or "cuda"), decided once per process.

    bf16 only where it is native: CUDA with bf16 support; a CPU with AMX or AVX-512 BF16 that torch's
    kernels use. A CPU whose capability leaves it unclear (e.g. AVX-512 without BF16, or not x86) is
    decided by a micro-benchmark of at most ~50 ms. TDSAE_PRECISION overrides all of this.
    """
    kind = pick_device(device)
    return _decide(kind, forced_precision())


@functools.lru_cache(maxsize=None)
def _decide(kind: str, forced: str | None) -> Precision:
    if kind == "cuda":
        hardware, native, reason = decide_cuda(*cuda_facts())
    else:
        facts = cpu_facts()
        hardware = f"{facts['capability']} ({', '.join(facts['bf16_flags']) or 'no bf16 instructions'})"
        native, reason = decide_cpu(facts)
    if forced is not None:
        verdict = "native" if native else "not native"
        return Precision(kind, forced, hardware, f"forced by {PRECISION_ENV} (bf16 is {verdict} here: {reason})",
                         native)
    return Precision(kind, "bfloat16" if native else "float32", hardware, reason, native)


def cuda_facts() -> tuple[str, bool]:
    """(GPU name and compute capability, whether it has native bf16) of the current CUDA device."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return f"{torch.cuda.get_device_name()} (sm_{major}{minor})", torch.cuda.is_bf16_supported(including_emulation=False)


def decide_cuda(hardware: str, native: bool) -> tuple[str, bool, str]:
    """(hardware, bf16 is native, reason) for a GPU."""
    return hardware, native, "the GPU has native bf16" if native else "the GPU has no native bf16 (it would be emulated)"


def cpu_facts() -> dict[str, Any]:
    """What torch knows of this CPU: the ISA its kernels run (capability), bf16 instruction flags,
    whether oneDNN has bf16 kernels (None when torch cannot say), and the architecture."""
    import torch

    features = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = None
    return {"capability": torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512, DEFAULT, SVE256, ...
            "bf16_flags": [name for name in ("amx_bf16", "avx512_bf16") if features.get(name)],
            "features_known": bool(features), "onednn_bf16": onednn, "machine": platform.machine().lower()}


def decide_cpu(facts: dict[str, Any], measure=None) -> tuple[bool, str]:
    """(bf16 is native, reason) from cpu_facts(); measure() -> bf16/fp32 speed ratio settles unclear cases."""
    if facts["onednn_bf16"] is False:
        return False, "oneDNN has no bf16 kernels for this CPU: bf16 would be emulated, ~100x slower"
    if facts["machine"] in ("x86_64", "amd64") and facts["features_known"]:
        if facts["capability"] in ("DEFAULT", "AVX2"):
            return False, f"torch runs {facts['capability']} kernels here, which have no native bf16"
        if facts["bf16_flags"]:
            return True, f"the CPU has {' and '.join(facts['bf16_flags'])}"
    faster = (measure or measure_bf16_speedup)()
    return faster >= BF16_MIN_SPEEDUP, (f"a micro-benchmark found bf16 {faster:.1f}x as fast as fp32 "
                                        f"(bf16 needs {BF16_MIN_SPEEDUP}x)")


def measure_bf16_speedup(budget_s: float = 0.05) -> float:
    """fp32 time / bf16 time of a small CPU matmul, in about budget_s seconds at most.

    Each dtype gets half the budget; an emulated bf16 product is so slow that one call fills it.
    """
    import torch

    def rate(dtype) -> float:
        a, b = torch.ones(256, 256, dtype=dtype), torch.ones(256, 256, dtype=dtype)
        a @ b  # first call: kernel selection
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < budget_s / 2:
            a @ b
            calls += 1
        return calls / (time.perf_counter() - start)

    return rate(torch.bfloat16) / rate(torch.float32)


EMULATION_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")  # cap the ISA torch and oneDNN use: an AVX2 run on
#   a newer CPU (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 reproduces the AVX2 machines' bf16 slowdown)


def machine_record(device: str = "cpu") -> dict[str, Any]:
    """What a benchmark ran on: CPU name, cores, torch threads, ISA, precision chosen, ISA caps in force."""
    import torch

    choice = matmul_precision(device)
    features = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    emulated = {name: os.environ[name] for name in EMULATION_ENV if os.environ.get(name)}
    return {"cpu": features.get("cpu_name") or platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": choice.device,
            "hardware": choice.hardware, "precision": choice.dtype, "precision_reason": choice.reason,
            "isa_capped_by": emulated, "torch": torch.__version__}


def machine_label(record: dict[str, Any]) -> str:
    """A short name for the kind of machine a record describes, e.g. "AMD EPYC: AVX2 (no bf16 instructions),
    float32", with the ISA caps in force when there are any."""
    capped = ", ISA capped by " + " ".join(f"{k}={v}" for k, v in record["isa_capped_by"].items())
    return (f"{record['cpu']}: {record['hardware']}, {record['precision']}"
            f"{capped if record['isa_capped_by'] else ''}")


def describe_precision(device: str = "cpu") -> dict[str, str]:
    """The rows describe_run shows about precision: hardware, dtype chosen, and why."""
    choice = matmul_precision(device)
    return {"hardware": choice.hardware, "matmul precision": choice.dtype, "precision reason": choice.reason}
