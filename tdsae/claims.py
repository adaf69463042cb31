"""Scientific claims stated as code.

A **check** must hold if the code is right (the Q-learner beats random); under
the ``tiny`` preset a failed check raises :class:`ClaimFailed`, so the chapter,
and with it the book build, fails. A **finding** is one of the papers' claims
tested on this run: it is recorded as holding or not and never raises; the
chapter's prose reports which. A finding that this machine cannot measure in
useful time (bf16 on a CPU without native bf16) is recorded as *not measured*,
with the reason, rather than skipped in silence.

A claim about organisms is stated across the preset's *population* of organisms (one trained network
is one sample): :meth:`ClaimBook.population_finding` records every organism's value and tests the
bound of a t-interval over organisms (or, with ``across="every"``, the worst organism, for a claim
about each network); :meth:`ClaimBook.population_check` requires every organism to pass. The
record's ``population`` field carries the per-organism values.

Each claim is displayed in the notebook as a small table row and carries a
machine-readable copy under the MIME type :data:`CLAIM_MIME`; the book build
collects those into ``_build/claims.json``.
"""

from __future__ import annotations

import html
import math
import operator
import re
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tdsae.stats import population_interval

CLAIM_MIME = "application/vnd.tdsae.claim+json"
FATAL_PRESETS = ("tiny",)
KINDS = ("check", "finding")
_COMPARISONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_COMPARISON_WORDS = {">": "above", ">=": "at least", "<": "below", "<=": "at most"}


def claim_anchor(name: str) -> str:
    """HTML id of a claim's box: "claim-" and its name with anything but letters, digits, - and _ replaced."""
    return "claim-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def requirement(value: float, comparison: str, threshold: float) -> str:
    """A claim's value against its bar in words: "measured 0.0806; needs at least 0.85" (a bare "0.0806 >= 0.85"
    reads as an assertion that holds, and "0 < 0" as nonsense)."""
    return f"measured {value:.4g}; needs {_COMPARISON_WORDS[comparison]} {threshold:.4g}"


class ClaimFailed(AssertionError):
    """A check did not hold: the code (not the science) is wrong somewhere."""


@dataclass(frozen=True)
class Claim:
    """One claim and its outcome on this run."""

    chapter: str  # chapter slug, e.g. "01_simulate-reference-agents"
    name: str  # short identifier, unique within the chapter
    kind: str  # "check" or "finding"
    statement: str  # the claim in one sentence
    value: float  # the measured quantity
    comparison: str  # one of >, >=, <, <=: how value must relate to threshold
    threshold: float  # the bar the value is compared with
    control: str  # what the value is measured against (a baseline, a null)
    control_value: float | None  # the control's own measurement, when it has one
    holds: bool  # outcome of value <comparison> threshold (False for NaN)
    preset: str  # preset the run used
    seed: int  # master seed of the run
    model: str = ""  # the model the claim is about: "organism", or a hub id or folder
    measured: bool = True  # False: not measured on this machine (value NaN, holds False); reason says why
    reason: str = ""  # why a claim was not measured
    population: dict | None = None  # a claim across organisms: n, per_organism, per_organism_bound, mean, low,
    #   high (t-interval over organisms), holding (organisms that pass on their own), rule (how value was formed)

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None)."""
        record = asdict(self)
        for key in ("value", "threshold", "control_value"):
            if isinstance(record[key], float) and not math.isfinite(record[key]):
                record[key] = None
        if self.population is not None:
            record["population"] = {key: _finite_or_none(value) for key, value in self.population.items()}
        return record

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/plain": self._text(),
            "text/html": self._html(),
            CLAIM_MIME: self.to_record(),
        }

    def _verdict(self) -> str:
        if not self.measured:
            return "not measured"
        return "holds" if self.holds else ("FAILED" if self.kind == "check" else "does not hold")

    def anchor(self) -> str:
        """The claim box's HTML id on its chapter's page (the results page links to it)."""
        return claim_anchor(self.name)

    def requirement(self) -> str:
        """The measured value against its bar in words (see :func:`requirement`)."""
        return requirement(self.value, self.comparison, self.threshold)

    def _text(self) -> str:
        if not self.measured:
            return f"[{self.kind}] {self.name}: not measured on this machine: {self.reason}"
        control = f"; control: {self.control}"
        if self.control_value is not None:
            control += f" = {self.control_value:.4g}"
        return (
            f"[{self.kind}] {self.name}: {self.requirement()} -> {self._verdict()}{control}"
            f"{self._population_text()}"
        )

    def _population_text(self) -> str:
        """'; over 3 organisms: 0.1, 0.2, 0.3 (2 of 3 pass alone); value = ...' or '' for a one-network claim."""
        if self.population is None:
            return ""
        pop = self.population
        values = ", ".join(f"{v:.3g}" for v in pop["per_organism"])
        unit = pop.get("unit", "organism")
        # a population of one is often a pretrained model, which is no organism
        members = "1 network" if pop["n"] == 1 and unit == "organism" else f"{pop['n']} {_plural(unit, pop['n'])}"
        return (f"; {members}: {values} "
                f"({pop['holding']} of {pop['n']} pass alone); value = {pop['rule']}")

    def _html(self) -> str:
        colour = "#1a7f37" if self.holds else ("#cf222e" if self.kind == "check" else "#9a6700")
        control = html.escape(self.control)
        if self.control_value is not None:
            control += f" = {self.control_value:.4g}"
        if not self.measured:
            return (
                f'<div class="tdsae-claim" id="{self.anchor()}" '
                f'style="border-left:4px solid #6e7781;padding:0.3em 0.8em;margin:0.4em 0">'
                f'<b style="color:#6e7781">{self.kind} not measured</b> &nbsp;<code>{html.escape(self.name)}</code><br>'
                f"{html.escape(self.statement)}<br><small>not measured on this machine: {html.escape(self.reason)}"
                f"</small></div>"
            )
        return (
            f'<div class="tdsae-claim" id="{self.anchor()}" '
            f'style="border-left:4px solid {colour};padding:0.3em 0.8em;margin:0.4em 0">'
            f'<b style="color:{colour}">{self.kind} {self._verdict()}</b> &nbsp;<code>{html.escape(self.name)}</code><br>'
            f"{html.escape(self.statement)}<br>"
            f"<small>{html.escape(self.requirement())}; control: {control}{html.escape(self._population_text())}</small></div>"
        )


def _finite_or_none(value: Any) -> Any:
    """JSON-safe: NaN and infinities (also inside lists) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _plural(unit: str, n: int) -> str:
    """'organism' -> 'organisms', 'pair of organisms' -> 'pairs of organisms' (unless n is 1)."""
    if n == 1:
        return unit
    head, _, tail = unit.partition(" ")
    return f"{head}s {tail}".strip()


def _population(values: np.ndarray, bounds: np.ndarray | None, comparison: str, threshold: float,
                unit: str = "organism") -> dict:
    """The population record of a claim (its rule filled in by the caller): n, per-organism values and bounds,
    the t-interval over organisms, and how many organisms pass on their own (their bound, else their value)."""
    if comparison not in _COMPARISONS:
        raise ValueError(f"unknown comparison {comparison!r}; choose one of: {', '.join(_COMPARISONS)}")
    interval = population_interval(values)
    alone = values if bounds is None else bounds
    return {"n": interval["n"], "unit": unit, "per_organism": values.tolist(),
            "per_organism_bound": None if bounds is None else bounds.tolist(),
            "mean": interval["mean"], "low": interval["low"], "high": interval["high"],
            "holding": int(sum(_COMPARISONS[comparison](v, threshold) for v in alone if math.isfinite(v)))}


def _mean_or_none(values) -> float | None:
    return None if values is None else float(np.mean(np.asarray(values, float)))


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(obj._text())
    else:
        display(obj)


class ClaimBook:
    """The claims of one chapter run; create one per chapter."""

    def __init__(self, chapter: str, preset: str, seed: int, model: str = "") -> None:
        self.chapter = chapter
        self.preset = preset
        self.seed = int(seed)
        self.model = model  # what later claims are about; a chapter that studies another model sets it
        self.claims: list[Claim] = []

    def check(self, name: str, statement: str, value: float, comparison: str,
              threshold: float, control: str, control_value: float | None = None,
              population: dict | None = None) -> None:
        """Record and show a check; under a fatal preset a failure raises ClaimFailed."""
        claim = self._record("check", name, statement, value, comparison, threshold, control, control_value,
                             population=population)
        if not claim.holds and self.preset in FATAL_PRESETS:
            raise ClaimFailed(f"check {name!r} of chapter {self.chapter!r} failed: {claim._text()}")

    def finding(self, name: str, statement: str, value: float, comparison: str,
                threshold: float, control: str, control_value: float | None = None) -> bool:
        """Record and show a finding; return whether it holds (never raises)."""
        return self._record("finding", name, statement, value, comparison, threshold, control, control_value).holds

    def findings_from(self, table: Any, *, value: str, comparison: str, threshold: float,
                      control_value: str | None = None) -> dict[str, bool]:
        """One finding per row of a comparison table, in row order; returns {name: holds}.

        Args: table: a DataFrame indexed by claim name, with columns "statement" (the claim in one
        sentence) and "control" (what it is measured against); value: the column holding the measured
        quantity (e.g. "low", a 95% lower bound); control_value: the column holding the control's own
        measurement, or None; comparison, threshold: the bar, the same for every row.
        """
        missing = [c for c in ("statement", "control", value, control_value) if c is not None and c not in table]
        if missing:
            raise ValueError(f"the comparison table lacks columns {missing}; it has {list(table.columns)}")
        return {name: self.finding(name, row["statement"], row[value], comparison, threshold, row["control"],
                                   None if control_value is None else row[control_value])
                for name, row in table.iterrows()}

    def population_finding(self, name: str, statement: str, per_organism, comparison: str, threshold: float,
                           control: str, control_values=None, per_organism_bound=None, across: str = "interval",
                           unit: str = "organism") -> bool:
        """Record a finding across the population of organisms; return whether it holds (never raises).

        Args: per_organism: one estimate per organism (e.g. each organism's paired difference);
        per_organism_bound: optionally each organism's own interval bound on the side that matters
        (e.g. its bootstrap lower bound for ">"), to count the organisms that pass alone;
        control_values: each organism's control measurement (their mean is shown).
        The value tested is the bound of the 95% t-interval over organisms on the side the comparison
        looks at (its lower bound for > and >=, upper for < and <=): the finding holds only if the
        mean over organisms clears the threshold beyond the spread between them. A population of
        one (a pretrained preset) has no such interval: its own bound is tested (or its estimate).
        across="every" tests the worst organism instead (its bound where given, else its estimate): for a
        claim about each network, e.g. an order of events in training, which a mean cannot state.
        unit: what one estimate belongs to, as the record names it ("organism"; "pair of organisms" for a claim
        about every two of them, which is stated with across="every", since pairs sharing an organism are not
        independent samples).
        """
        if across not in ("interval", "every"):
            raise ValueError(f"unknown rule across organisms {across!r}; choose 'interval' or 'every'")
        estimates = np.asarray(per_organism, float).ravel()
        bounds = None if per_organism_bound is None else np.asarray(per_organism_bound, float).ravel()
        if bounds is not None and bounds.shape != estimates.shape:
            raise ValueError(f"per_organism_bound has {bounds.size} values for {estimates.size} organisms")
        if unit != "organism" and across != "every":
            raise ValueError(f"a finding over each {unit!r} is stated with across='every': such units share "
                             "organisms, so a t-interval over them would treat them as independent")
        population = _population(estimates, bounds, comparison, threshold, unit)
        upper = comparison in ("<", "<=")
        if across == "every":
            tested = estimates if bounds is None else bounds
            value = float(tested.max() if upper else tested.min())
            population["rule"] = (f"the worst of {population['n']} {_plural(unit, population['n'])}"
                                  + (" (its own interval bound)" if bounds is not None else ""))
        elif population["n"] > 1:
            value = population["high" if upper else "low"]
            side = "upper" if upper else "lower"
            population["rule"] = f"95% t-interval {side} bound over {population['n']} organisms"
        else:
            value = estimates[0] if bounds is None else bounds[0]
            population["rule"] = "the one network's " + ("estimate" if bounds is None else "own interval bound")
        return self._record("finding", name, statement, value, comparison, threshold, control,
                            _mean_or_none(control_values), population=population).holds

    def population_check(self, name: str, statement: str, per_organism, comparison: str, threshold: float,
                         control: str, control_values=None) -> None:
        """Record a check that every organism must pass (a check holds for any correctly coded network).

        The value tested is the worst organism's; under a fatal preset a failure raises ClaimFailed.
        """
        values = np.asarray(per_organism, float).ravel()
        population = _population(values, None, comparison, threshold)
        population["rule"] = f"the worst of {population['n']} organism{'s' if population['n'] != 1 else ''}"
        worst = float(values.max() if comparison in ("<", "<=") else values.min())
        self.check(name, statement, worst, comparison, threshold, control, _mean_or_none(control_values),
                   population=population)

    def not_measured(self, name: str, statement: str, comparison: str, threshold: float, control: str,
                     reason: str) -> bool:
        """Record and show a finding this machine cannot measure in useful time, with the reason; return False."""
        if not reason.strip():
            raise ValueError(f"finding {name!r} is recorded as not measured, so it needs a reason")
        return self._record("finding", name, statement, math.nan, comparison, threshold, control, None,
                            reason=reason).holds

    def _record(self, kind: str, name: str, statement: str, value: float, comparison: str,
                threshold: float, control: str, control_value: float | None, reason: str = "",
                population: dict | None = None) -> Claim:
        if comparison not in _COMPARISONS:
            raise ValueError(f"unknown comparison {comparison!r}; choose one of: {', '.join(_COMPARISONS)}")
        if any(c.name == name for c in self.claims):
            raise ValueError(f"claim {name!r} is already recorded in chapter {self.chapter!r}")
        value = float(value)
        threshold = float(threshold)
        holds = math.isfinite(value) and bool(_COMPARISONS[comparison](value, threshold))
        claim = Claim(
            chapter=self.chapter, name=name, kind=kind, statement=statement, value=value,
            comparison=comparison, threshold=threshold, control=control,
            control_value=None if control_value is None else float(control_value),
            holds=holds, preset=self.preset, seed=self.seed, model=self.model, measured=not reason, reason=reason,
            population=population,
        )
        self.claims.append(claim)
        _display(claim)
        return claim

    def table(self) -> "Any":
        """The claims recorded so far, one row each: name, kind, value, bar, control, outcome (and
        whether it was measured, when one was not)."""
        import pandas as pd

        columns = ["name", "kind", "value", "comparison", "threshold", "control_value", "holds"]
        if not all(c.measured for c in self.claims):
            columns.append("measured")
        return pd.DataFrame([c.to_record() for c in self.claims], columns=columns).set_index("name")
