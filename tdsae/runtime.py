"""Where a run happens: device choice and the versions a chapter reports."""

from __future__ import annotations

import dataclasses
import platform
from importlib import metadata
from typing import Any

REPORTED_LIBRARIES = ("tdsae", "torch", "transformers", "nnsight", "numpy", "scipy", "pandas", "scikit-learn")


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
    rows.update({f"version: {k}": v for k, v in library_versions().items()})
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))
