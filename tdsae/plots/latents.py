"""Figures of latents that track TD errors and Q-values (chapters 7 to 9)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import new_figure
from tdsae.plots.population import ORGANISM_MARKERS

MODEL_COLOURS = {"trained": "#0b6e99", "untrained": "#8d8d8d"}
UNIT_STYLES = {"SAE latent": "-", "SAE latent pair": "-.", "residual dimension": ":", "TopK latent": "--"}


def plot_layer_profile(table: Any, title: str, ax: Any = None, reference: float | None = None,
                       reference_label: str = "") -> Any:
    """Report-half |r| of the best unit by layer, one line per (model, units), with 95% bands.

    Args: table: tdsae.latents.profile rows; reference: a horizontal line (e.g. the reward's |r|).
    """
    if ax is None:
        fig, ax = new_figure(width=5.2, height=3.4)
    else:
        fig = ax.figure
    for (model, units), part in table.groupby(["model", "units"], sort=False):
        part = part.sort_values("layer")
        sign = np.sign(part.r_report.to_numpy())
        strength = np.abs(part.r_report.to_numpy())
        low = np.where(sign < 0, -part.high, part.low)
        high = np.where(sign < 0, -part.low, part.high)
        colour = MODEL_COLOURS.get(model, None)
        ax.plot(part.layer, strength, marker="o", linestyle=UNIT_STYLES.get(units, "-"), color=colour,
                label=f"{model}: {units}")
        ax.fill_between(part.layer, low, high, color=colour, alpha=0.12, linewidth=0)
    if reference is not None:
        ax.axhline(abs(reference), color="#d1495b", linestyle="--", linewidth=1, label=reference_label)
    ax.set(title=title, xlabel="layer (0 = embeddings)", ylabel="|r| on report half", ylim=(0, 1))
    ax.set_xticks(sorted(table.layer.unique()))
    ax.legend(frameon=False, fontsize=7)
    return fig


def plot_reference_sweep(sweep: Any, paper_alpha: float, title: str, ax: Any = None) -> Any:
    """|r| of the best unit against the reference learner's alpha, one line per gamma."""
    if ax is None:
        fig, ax = new_figure(width=4.8, height=3.2)
    else:
        fig = ax.figure
    for gamma, part in sweep.groupby("gamma"):
        strength = part.r_report.abs()
        ax.plot(part.alpha, strength, marker="o", label=f"gamma = {gamma:g}")
    ax.axvline(paper_alpha, color="0.5", linestyle=":", linewidth=1)
    ax.set(title=title, xlabel="reference learning rate alpha", ylabel="|r| on report half", xscale="log")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_population_profiles(profiles_by_organism: dict, units: str = "SAE latent") -> Any:
    """One panel per target: every organism's best-unit |r| by layer, trained in colour and its untrained
    control in grey, one marker per organism, and the mean over organisms as a thick line.

    Args: profiles_by_organism: {organism: {panel title: tdsae.latents.profile rows}} (the same panels
    for every organism); units: the kind of unit drawn (one of tdsae.latents.UNIT_KINDS).
    """
    panels = list(next(iter(profiles_by_organism.values())))
    ncols = 2 if len(panels) > 1 else 1
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=5.5 * ncols, height=3.4 * nrows, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for model in ("trained", "untrained"):
            lines = []
            for (organism, profiles), marker in zip(profiles_by_organism.items(), ORGANISM_MARKERS * 8):
                part = profiles[panel]
                part = part[(part.model == model) & (part.units == units)].sort_values("layer")
                lines.append(part.set_index("layer").r_report.abs())
                ax.plot(part.layer, lines[-1].to_numpy(), marker=marker, markersize=4, linewidth=0.9, alpha=0.75,
                        color=MODEL_COLOURS[model], label=f"organism {organism}, {model}")
            mean = np.mean(lines, axis=0)
            ax.plot(lines[0].index, mean, linewidth=2.6, color=MODEL_COLOURS[model], label=f"mean, {model}")
        ax.set(title=f"{panel}: {units}", xlabel="layer (0 = embeddings)", ylabel="|r| on report half", ylim=(0, 1))
        ax.set_xticks(sorted(lines[0].index))
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(frameon=False, fontsize=7, ncol=2)
    return fig
