"""tdsae: temporal-difference learning inside language models.

The package behind the executable book. Importing it is cheap: heavy
libraries (torch, transformers, nnsight) are imported by the modules that
need them.
"""

from .claims import ClaimBook, ClaimFailed
from .presets import PRESETS, get_preset, resolve_settings
from .runtime import describe_run, pick_device

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "ClaimBook",
    "ClaimFailed",
    "describe_run",
    "get_preset",
    "pick_device",
    "resolve_settings",
]
