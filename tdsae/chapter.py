"""What every chapter does first and last: settings, a claim book and the plot style; glued values.

    S, claims = tdsae.setup_chapter("07_find-td-latents", preset, seed=seed)
    tdsae.glue_values(l1=l1, reward_r=reward_r)            # {glue:text}`l1` in the prose
    tdsae.glue_values(ce=tdsae.range_phrase(scores, ".1%"))  # "between 98.2% and 99.9%", or "99.9% at every layer"
    tdsae.glue_values(effect=tdsae.interval_phrase(mean, low, high, "+.3f"))  # "+0.012 (95% interval ...)"
"""

from __future__ import annotations

import numbers
import warnings

from tdsae import plots
from tdsae.claims import ClaimBook
from tdsae.presets import resolve_settings
from tdsae.validation import ORGANISM


def setup_chapter(chapter: str, preset: str, seed: int | None = None, **overrides):
    """The resolved settings and an empty ClaimBook for a chapter, with the book's plot style applied.

    Args: chapter: the chapter's slug (its file name without extension); preset, seed, overrides: as
    tdsae.resolve_settings takes them. Returns: (settings, claims).
    """
    if not isinstance(chapter, str) or not chapter.strip():
        raise ValueError(f"chapter must be the chapter's slug, a non-empty string, got {chapter!r}")
    warnings.filterwarnings("ignore", message="IProgress not found")  # without ipywidgets, text progress bars are fine
    settings = resolve_settings(preset, seed=seed, **overrides)
    plots.apply_style()
    return settings, ClaimBook(chapter, settings.name, settings.seed, settings.model)


def _population_claim(claims: ClaimBook, name: str):
    """The population claim ``name`` of a chapter's claim book (ValueError naming it when there is none)."""
    found = [c for c in claims.claims if c.name == name and c.population is not None]
    if not found:
        raise ValueError(f"no population claim {name!r} in chapter {claims.chapter!r}")
    return found[0]


def glue_population(claims: ClaimBook, name: str, prefix: str | None = None) -> None:
    """Glue a population claim's summary for the prose: {prefix}_mean, _low, _high (the t-interval over
    organisms) and _alone ("2 of 3": organisms passing on their own); prefix defaults to the claim's name."""
    population, prefix = _population_claim(claims, name).population, prefix or name
    glue_values(**{f"{prefix}_{key}": population[key] for key in ("mean", "low", "high")},
                **{f"{prefix}_alone": f"{population['holding']} of {population['n']}"})


def glue_values(**values) -> None:
    """Glue each value under its name for the prose ({glue:text}`name`), without displaying it; numpy
    numbers become plain Python numbers so that format specs such as ``:.2f`` apply."""
    from myst_nb import glue

    for name, value in values.items():
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            value = int(value)
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            value = float(value)
        glue(name, value, display=False)


def range_phrase(values, spec: str, where: str = "layer") -> str:
    """How the prose states the spread of ``values``: "between <min> and <max>", each formatted with ``spec``, or
    "<value> at every <where>" when the two print the same (a glued "between 99.9% and 99.9%" reads as a slip).
    NaNs are left out; "not measured" if nothing is left."""
    import numpy as np

    finite = np.asarray(values, float).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return "not measured"
    low, high = format(float(finite.min()), spec), format(float(finite.max()), spec)
    return f"{low} at every {where}" if low == high else f"between {low} and {high}"


def _formatted(value: float, spec: str) -> str:
    """format(value, spec), with a value that rounds to zero printed as zero ("-0.000" would differ from "+0.000")."""
    text = format(float(value), spec)
    return text if any(ch in "123456789" for ch in text) else format(0.0, spec)


def interval_phrase(estimate: float, low: float, high: float, spec: str) -> str:
    """An estimate with its interval as prose: "+0.012 (95% interval +0.004 to +0.020)"; when the interval's ends
    print the same, "+0.000, the same in every resample" (a glued "+0.000 (+0.000 to +0.000)" reads as a slip);
    "not measured" when the estimate is NaN."""
    import math

    if estimate is None or not math.isfinite(float(estimate)):
        return "not measured"
    shown, lo, hi = (_formatted(v, spec) for v in (estimate, low, high))
    if lo == hi:
        return f"{shown}, the same in every resample"
    return f"{shown} (95% interval {lo} to {hi})"


def bound_phrase(value: float, spec: str, bound: str = "at least") -> str:
    """A lower (or upper) bound as prose: "at least 97%"; a percentage bound at the scale's end states the value
    itself ("100%" rather than "at least 100%", "0%" rather than "at most 0%"). ``bound``: "at least" or "at most"."""
    if bound not in ("at least", "at most"):
        raise ValueError(f"bound must be 'at least' or 'at most', got {bound!r}")
    shown = format(float(value), spec)
    scale_end = 1.0 if bound == "at least" else 0.0  # nothing lies beyond it on a percentage scale
    return shown if "%" in spec and shown == format(scale_end, spec) else f"{bound} {shown}"


def list_phrase(values, spec: str) -> str:
    """Values in order as prose, each formatted with ``spec``: "0.21", "0.21 and 0.18", "0.21, 0.18 and 0.30";
    a NaN reads "not measured". For one value per organism, where a range would hide which is which."""
    import math

    plain = [int(v) if isinstance(v, numbers.Integral) else v if isinstance(v, str) else float(v) for v in values]
    words = ["not measured" if isinstance(v, float) and math.isnan(v) else format(v, spec) for v in plain]
    if not words:
        return "none"
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def side_phrase(values, others, spec: str, other: str, where: str = "layer") -> str:
    """Where ``values`` lie against ``others``, entry by entry, as prose whose direction the values decide:
    "above the untrained network's at every layer (by 0.04 to 0.07)", "below ... at every layer (by 0.12)",
    "level with the untrained network's at every layer", or "above the untrained network's at 2 of 4 layers
    and below it at 2". ``spec`` formats the size of a difference; one that prints as zero counts as level.
    ``other`` names what is compared with; pairs with a NaN are left out ("not measured" if none is left)."""
    import numpy as np

    a, b = np.asarray(values, float).ravel(), np.asarray(others, float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"side_phrase needs as many values as others, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    differences = (a - b)[keep]
    if differences.size == 0:
        return "not measured"
    sizes = [_formatted(abs(d), spec) for d in differences]
    level = [size == _formatted(0.0, spec) for size in sizes]
    sides = ["level" if flat else "above" if d > 0 else "below" for d, flat in zip(differences, level)]
    n, everywhere = len(sides), f" at every {where}" if len(sides) > 1 else ""
    if len(set(sides)) == 1:
        side = sides[0]
        if side == "level":
            return f"level with {other}{everywhere}"
        shown = sorted({float(s) for s in sizes})
        by = (format(shown[0], spec) if len(shown) == 1 else
              f"{format(shown[0], spec)} to {format(shown[-1], spec)}")
        return f"{side} {other}{everywhere} (by {by})"
    counts = [(side, sides.count(side)) for side in ("above", "below", "level") if side in sides]
    words = {"above": "above", "below": "below", "level": "level with"}
    first, *rest = counts
    parts = [f"{words[first[0]]} {other} at {first[1]} of {n} {where}s"]
    parts += [f"{words[side]} it at {count}" for side, count in rest]
    return parts[0] if not rest else f"{', '.join(parts[:-1])} and {parts[-1]}"


def population_phrase(claims: ClaimBook, name: str, spec: str, unit: str = "organism") -> str:
    """A population claim's mean over organisms with its 95% t-interval, as prose: "+0.135 (95% interval over
    organisms -0.073 to +0.343)"; "+0.000 in every organism" when the interval's ends print the same; for a
    population of one (a pretrained preset), "+0.135 (one network: no interval over networks)".
    ``unit`` names one member ("organism", "walker")."""
    import math

    population = _population_claim(claims, name).population
    mean, low, high = (float(population[key]) for key in ("mean", "low", "high"))
    if not math.isfinite(mean):
        return "not measured"
    shown = _formatted(mean, spec)
    if population["n"] < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return f"{shown} (one network: no interval over networks)"
    lo, hi = _formatted(low, spec), _formatted(high, spec)
    return f"{shown} in every {unit}" if lo == hi else f"{shown} (95% interval over {unit}s {lo} to {hi})"


def population_reading(n: int, side: str, unit: str = "organism") -> tuple[str, str]:
    """How a chapter reads its population claims, as two phrases for the prose: what each claim reports, and when
    it holds, the interval having to lie ``side`` ("above" or "below") zero.

    For n > 1: ("the mean over the 3 organisms with its 95% t-interval, where that interval lies, and how many
    organisms clear zero on their own bootstrap interval", "the interval over organisms lies above zero"). A
    population of one (a pretrained preset) has no interval over networks, so its claims are tested on the one
    network's own interval over experiments, and the phrases say so."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be the number of networks in the population, an integer >= 1, got {n!r}")
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below' (where a holding interval lies), got {side!r}")
    if n == 1:
        return ("the one network's value, and where its own 95% bootstrap interval over experiments lies",
                f"that interval lies {side} zero")
    return (f"the mean over the {n} {unit}s with its 95% t-interval, where that interval lies, and how many "
            f"{unit}s clear zero on their own bootstrap interval", f"the interval over {unit}s lies {side} zero")


def population_marks(n: int, unit: str = "organism") -> dict[str, str]:
    """How a population figure's caption describes its marks, for a population of ``n`` networks: "each" (whose
    markers: "each organism"), "mean_bar" (the black mark of tdsae.plots.plot_population), "mean_band" (the thick
    line and band of plot_population_profiles) and "lines" (the thin and thick lines of plot_edit_tracking); and
    "interval", the interval whose bound a population claim tests, as its statement names it. A population of
    one (a pretrained preset) has no mean over networks and no interval over them, and says so."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n must be the number of networks in the population, an integer >= 1, got {n!r}")
    if n == 1:
        return {"each": "the one network",
                "mean_bar": "its value again in black (one network has no interval over networks)",
                "mean_band": "the one network's line again (thick), with no band: one network has no interval "
                             "over networks",
                "lines": "Thin line and thick line: the one network (it has no interval over networks)",
                "interval": "the network's own 95% bootstrap interval over experiments"}
    return {"each": f"each {unit}",
            "mean_bar": f"the mean over {unit}s with its 95% t-interval (black)",
            "mean_band": f"the mean over {unit}s (thick) and its 95% t-interval over {unit}s (band)",
            "lines": f"Thin lines: {unit}s; thick: the mean over {unit}s with its 95% t-interval",
            "interval": f"the 95% t-interval over {unit}s"}


def network_names(settings) -> dict[str, str]:
    """How the prose names the network a chapter studies and its untrained control, from resolved settings.

    "member" is what one network of its population is called in a legend ("organism" or "model").
    For the organism: {"studied": "organism 0", "control": "its untrained step-0 checkpoint",
    "control_origin": "the organism's own starting point, the initialisation its training began from"}; for a
    pretrained model, "studied" is its id or folder, "control" "its re-initialised copy" and "control_origin"
    says that the copy is the same configuration initialised afresh, seeded by the master seed."""
    model = getattr(settings, "model", None)
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"settings must be resolved settings with a model (tdsae.resolve_settings), got {settings!r}")
    if model == ORGANISM:
        return {"studied": f"organism {settings.organism}", "member": "organism",
                "control": "its untrained step-0 checkpoint",
                "control_origin": "the organism's own starting point, the initialisation its training began from"}
    return {"studied": model, "member": "model", "control": "its re-initialised copy",
            "control_origin": f"{model}'s configuration built afresh (seeded by the master seed), so nothing "
                              "of its pretraining is left"}


def verdict_phrase(claims: ClaimBook, name: str) -> str:
    """Where a population claim's 95% t-interval over organisms lies against its threshold, as prose:
    "its interval lies above 0", "... below 0" or "its interval straddles 0"; for a population of one,
    "the one network's own bound clears 0" or "... does not clear 0". The claim's meaning is the prose's job."""
    import math

    claim = _population_claim(claims, name)
    threshold = format(float(claim.threshold), "g")
    low, high = float(claim.population["low"]), float(claim.population["high"])
    if claim.population["n"] < 2 or not (math.isfinite(low) and math.isfinite(high)):
        return f"the one network's own bound {'clears' if claim.holds else 'does not clear'} {threshold}"
    if low > claim.threshold:
        return f"its interval lies above {threshold}"
    if high < claim.threshold:
        return f"its interval lies below {threshold}"
    return f"its interval straddles {threshold}"
