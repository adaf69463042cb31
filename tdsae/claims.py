"""Scientific claims stated as code.

A **check** must hold if the code is right (the Q-learner beats random); under
the ``tiny`` preset a failed check raises :class:`ClaimFailed`, so the chapter,
and with it the book build, fails. A **finding** is one of the papers' claims
tested on this run: it is recorded as holding or not and never raises; the
chapter's prose reports which. A finding that this machine cannot measure in
useful time (bf16 on a CPU without native bf16) is recorded as *not measured*,
with the reason, rather than skipped in silence.

Each claim is displayed in the notebook as a small table row and carries a
machine-readable copy under the MIME type :data:`CLAIM_MIME`; the book build
collects those into ``_build/claims.json``.
"""

from __future__ import annotations

import html
import math
import operator
from dataclasses import asdict, dataclass
from typing import Any

CLAIM_MIME = "application/vnd.tdsae.claim+json"
FATAL_PRESETS = ("tiny",)
KINDS = ("check", "finding")
_COMPARISONS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


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
    measured: bool = True  # False: not measured on this machine (value NaN, holds False); reason says why
    reason: str = ""  # why a claim was not measured

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None)."""
        record = asdict(self)
        for key in ("value", "threshold", "control_value"):
            if isinstance(record[key], float) and not math.isfinite(record[key]):
                record[key] = None
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

    def _text(self) -> str:
        if not self.measured:
            return f"[{self.kind}] {self.name}: not measured on this machine: {self.reason}"
        control = f"; control: {self.control}"
        if self.control_value is not None:
            control += f" = {self.control_value:.4g}"
        return (
            f"[{self.kind}] {self.name}: {self.value:.4g} {self.comparison} "
            f"{self.threshold:.4g} -> {self._verdict()}{control}"
        )

    def _html(self) -> str:
        colour = "#1a7f37" if self.holds else ("#cf222e" if self.kind == "check" else "#9a6700")
        control = html.escape(self.control)
        if self.control_value is not None:
            control += f" = {self.control_value:.4g}"
        if not self.measured:
            return (
                f'<div class="tdsae-claim" style="border-left:4px solid #6e7781;padding:0.3em 0.8em;margin:0.4em 0">'
                f'<b style="color:#6e7781">{self.kind} not measured</b> &nbsp;<code>{html.escape(self.name)}</code><br>'
                f"{html.escape(self.statement)}<br><small>not measured on this machine: {html.escape(self.reason)}"
                f"</small></div>"
            )
        return (
            f'<div class="tdsae-claim" style="border-left:4px solid {colour};padding:0.3em 0.8em;margin:0.4em 0">'
            f'<b style="color:{colour}">{self.kind} {self._verdict()}</b> &nbsp;<code>{html.escape(self.name)}</code><br>'
            f"{html.escape(self.statement)}<br>"
            f"<small>value {self.value:.4g} {html.escape(self.comparison)} {self.threshold:.4g}; "
            f"control: {control}</small></div>"
        )


def _display(obj: Any) -> None:
    try:
        from IPython.display import display
    except ImportError:
        print(obj._text())
    else:
        display(obj)


class ClaimBook:
    """The claims of one chapter run; create one per chapter."""

    def __init__(self, chapter: str, preset: str, seed: int) -> None:
        self.chapter = chapter
        self.preset = preset
        self.seed = int(seed)
        self.claims: list[Claim] = []

    def check(self, name: str, statement: str, value: float, comparison: str,
              threshold: float, control: str, control_value: float | None = None) -> None:
        """Record and show a check; under a fatal preset a failure raises ClaimFailed."""
        claim = self._record("check", name, statement, value, comparison, threshold, control, control_value)
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

    def not_measured(self, name: str, statement: str, comparison: str, threshold: float, control: str,
                     reason: str) -> bool:
        """Record and show a finding this machine cannot measure in useful time, with the reason; return False."""
        if not reason.strip():
            raise ValueError(f"finding {name!r} is recorded as not measured, so it needs a reason")
        return self._record("finding", name, statement, math.nan, comparison, threshold, control, None,
                            reason=reason).holds

    def _record(self, kind: str, name: str, statement: str, value: float, comparison: str,
                threshold: float, control: str, control_value: float | None, reason: str = "") -> Claim:
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
            holds=holds, preset=self.preset, seed=self.seed, measured=not reason, reason=reason,
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
