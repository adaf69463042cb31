"""Figures of how alike several networks' SAE feature spaces are (chapter 12)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import ROLE_COLOURS, new_figure

# The ceiling is the bar to reach (the reference colour), the test the trained organisms, the floor the untrained
# network; every shuffled null is a control.
RUNG_COLOURS = {"ceiling": ROLE_COLOURS["reference"], "test": ROLE_COLOURS["trained"],
                "floor": ROLE_COLOURS["untrained"]}
RUNG_MARKERS = {"ceiling": "s", "test": "o", "floor": "^"}
RUNG_LABELS = {"ceiling": "ceiling: two SAE seeds, one organism", "test": "test: two organisms",
               "floor": "floor: organism against untrained"}
NULL_LABEL = "shuffled null, 95th percentile (one per comparison)"


def plot_ladder(diagonal: Any, measures: dict, pairing: str = "one-to-one") -> Any:
    """One panel per measure (two a row): its value at each layer for every comparison of every rung (the test
    rung has one line per pair of organisms), each with its shuffled null's 95th percentile dotted in the control
    colour where the measure has one; one legend for the figure; each panel from 0 (or below, where a value is) to 1.

    Args: diagonal: UniversalityStudy.diagonal; measures: {column: (title, y label)}; pairing: which pairing's
    rows to draw.
    """
    rows = diagonal[diagonal.pairing == pairing]
    ncols = min(len(measures), 2)
    nrows = -(-len(measures) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=4.9 * ncols, height=2.9 * nrows + 0.5, squeeze=False)
    for ax in axes.flat[len(measures):]:
        ax.set_visible(False)
    legend = {}
    for ax, (column, (title, ylabel)) in zip(axes.flat, measures.items()):
        for rung, colour in RUNG_COLOURS.items():
            for _, part in rows[rows.rung == rung].groupby(["a", "b"], sort=False):
                part = part.sort_values("layer")
                line, = ax.plot(part.layer, part[column], marker=RUNG_MARKERS[rung], color=colour, alpha=0.9)
                legend.setdefault(RUNG_LABELS[rung], line)
                if f"{column}_null_high" in part and part[f"{column}_null_high"].notna().any():
                    null, = ax.plot(part.layer, part[f"{column}_null_high"], linestyle=":",
                                    color=ROLE_COLOURS["control"], linewidth=1.4)
                    legend.setdefault(NULL_LABEL, null)
        ax.set(title=title, ylabel=ylabel, xlabel="layer", xticks=sorted(rows.layer.unique()))
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)  # every measure tops out at 1: show the whole scale
        ax.grid(axis="x", visible=False)
    fig.legend(list(legend.values()), list(legend), frameon=False, fontsize=8, loc="outside lower center", ncols=2)
    return fig


def plot_layer_grid(grid: Any, measures: dict, names: tuple[str, str]) -> Any:
    """One heatmap per measure (two a row) over every layer pair of one comparison, each cell annotated, one colour
    scale from 0 to 1 for all.

    Args: grid: UniversalityStudy.grid; measures: {column: title}; names: (reader a, reader b) for the axes.
    """
    layers_a, layers_b = sorted(grid.layer_a.unique()), sorted(grid.layer_b.unique())
    ncols = min(len(measures), 2)
    nrows = -(-len(measures) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=3.6 * ncols + 0.9, height=3.1 * nrows, squeeze=False)
    for ax in axes.flat[len(measures):]:
        ax.set_visible(False)
    for ax, (column, title) in zip(axes.flat, measures.items()):
        values = grid.pivot(index="layer_a", columns="layer_b", values=column).loc[layers_a, layers_b].to_numpy(float)
        image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, origin="lower")
        for i in range(len(layers_a)):
            for j in range(len(layers_b)):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if values[i, j] < 0.6 else "black")
        ax.set_xticks(range(len(layers_b)), layers_b)
        ax.set_yticks(range(len(layers_a)), layers_a)
        ax.set(title=title, xlabel=f"layer of {names[1]}", ylabel=f"layer of {names[0]}")
        ax.grid(False)
    fig.colorbar(image, ax=list(axes.flat), shrink=0.6, label="score (0 to 1)")
    return fig


def plot_tracked_pairing(partners: Any, td_q: Any) -> Any:
    """Where the tracked latents' pairing falls among all latents: per layer, the report-half correlation of every
    latent with its one-to-one partner (a violin over all test pairs), and each test pair's TD-error and Q-value
    latents' correlation with each other as markers; one legend below the axes.

    Args: partners: rows of a, b, layer, report (UniversalityStudy.partners); td_q: UniversalityStudy.td_q.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layers = sorted(partners.layer.unique())
    fig, ax = new_figure(width=7.6, height=4.0)
    data = [partners[partners.layer == layer].report.dropna().to_numpy(float) for layer in layers]
    parts = ax.violinplot(data, positions=layers, widths=0.7, showextrema=False)
    every = "#b9d7e6"  # a light shade of the trained colour: every latent of the trained organisms
    for body in parts["bodies"]:
        body.set_facecolor(every)
        body.set_alpha(0.8)
    markers = {"TD error": ("^", "#7b5ea7"), "Q difference": ("o", ROLE_COLOURS["trained"])}
    pairs = list(td_q.groupby(["a", "b"], sort=False).groups)
    for quantity, (marker, colour) in markers.items():
        part = td_q[td_q.quantity == quantity]
        offsets = np.array([pairs.index((a, b)) for a, b in zip(part.a, part.b)], float)
        offsets = 0.12 * (offsets - (len(pairs) - 1) / 2) + (0.08 if quantity == "TD error" else -0.08)
        filled = part.matched.to_numpy(bool)
        ax.scatter(part.layer.to_numpy(float)[filled] + offsets[filled], part.r.to_numpy(float)[filled],
                   marker=marker, color=colour, s=36, zorder=3, label=f"{quantity} latents (matched one-to-one)")
        ax.scatter(part.layer.to_numpy(float)[~filled] + offsets[~filled], part.r.to_numpy(float)[~filled],
                   marker=marker, facecolors="none", edgecolors=colour, s=36, zorder=3,
                   label=f"{quantity} latents (not matched)")
    ax.axhline(0, color="0.5", linestyle="--", linewidth=0.9)
    ax.set(xticks=layers, xlabel="layer", ylabel="correlation on the report half",
           title="each latent and its partner against the TD and Q latents")
    ax.grid(axis="x", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Patch(facecolor=every, alpha=0.8), Line2D([], [], color="0.5", linestyle="--", linewidth=0.9)]
    labels += ["every latent with its one-to-one partner", "no correlation"]
    fig.legend(handles, labels, frameon=False, fontsize=8, loc="outside lower center", ncols=2)
    return fig
