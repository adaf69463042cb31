"""tdsae: temporal-difference learning inside language models.

The package behind the executable book. Importing it loads what every chapter
needs first (settings, claims, the plot style), not torch, transformers or
nnsight: the stage packages import those. docs/architecture.md shows the layout.
"""

from .chapter import (bound_phrase, glue_population, glue_values, interval_phrase, list_phrase, network_names,
                      population_marks, population_phrase, population_reading, range_phrase, setup_chapter,
                      side_phrase, verdict_phrase)
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
    "glue_population",
    "glue_values",
    "bound_phrase",
    "interval_phrase",
    "list_phrase",
    "network_names",
    "population_marks",
    "population_phrase",
    "population_reading",
    "side_phrase",
    "verdict_phrase",
    "range_phrase",
    "pick_device",
    "resolve_settings",
    "setup_chapter",
]
