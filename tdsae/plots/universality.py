"""Figures of how alike several networks' SAE feature spaces are (chapter 12)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import new_figure

RUNG_COLOURS = {"ceiling": "#0b6e99", "test": "#d1495b", "floor": "#8d8d8d"}
RUNG_LABELS = {"ceiling": "ceiling: two SAE seeds, one organism", "test": "test: two organisms",
               "floor": "floor: organism against untrained"}


def plot_ladder(diagonal: Any, measures: dict, pairing: str = "one-to-one") -> Any:
    """One panel per measure: its value at each layer for every comparison of every rung (the test rung has one
    line per pair of organisms), each with its shuffled null's 95th percentile dotted in the same colour where the
    measure has one.

    Args: diagonal: UniversalityStudy.diagonal; measures: {column: (title, y label)}; pairing: which pairing's
    rows to draw.
    """
    rows = diagonal[diagonal.pairing == pairing]
    fig, axes = new_figure(ncols=len(measures), width=3.7 * len(measures), height=3.4, squeeze=False)
    for ax, (column, (title, ylabel)) in zip(axes[0], measures.items()):
        for rung, colour in RUNG_COLOURS.items():
            for i, ((a, b), part) in enumerate(rows[rows.rung == rung].groupby(["a", "b"], sort=False)):
                part = part.sort_values("layer")
                label = RUNG_LABELS[rung] if i == 0 else None
                ax.plot(part.layer, part[column], marker="o", color=colour, label=label, alpha=0.9)
                if f"{column}_null_high" in part and part[f"{column}_null_high"].notna().any():
                    ax.plot(part.layer, part[f"{column}_null_high"], linestyle=":", color=colour, linewidth=1.2)
        ax.set(title=title, ylabel=ylabel, xlabel="layer", xticks=sorted(rows.layer.unique()))
        ax.grid(axis="x", visible=False)
    axes[0][0].legend(frameon=False, fontsize=8)
    return fig


def plot_layer_grid(grid: Any, measures: dict, names: tuple[str, str]) -> Any:
    """One heatmap per measure over every layer pair of one comparison, each cell annotated.

    Args: grid: UniversalityStudy.grid; measures: {column: title}; names: (reader a, reader b) for the axes.
    """
    layers_a, layers_b = sorted(grid.layer_a.unique()), sorted(grid.layer_b.unique())
    fig, axes = new_figure(ncols=len(measures), width=3.2 * len(measures), height=3.3, squeeze=False)
    for ax, (column, title) in zip(axes[0], measures.items()):
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
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
    return fig


def plot_tracked_pairing(partners: Any, td_q: Any) -> Any:
    """Where the tracked latents' pairing falls among all latents: per layer, the report-half correlation of every
    latent with its one-to-one partner (a violin over all test pairs), and each test pair's TD-error and Q-value
    latents' correlation with each other as markers.

    Args: partners: rows of a, b, layer, report (UniversalityStudy.partners); td_q: UniversalityStudy.td_q.
    """
    layers = sorted(partners.layer.unique())
    fig, ax = new_figure(width=7.6, height=3.6)
    data = [partners[partners.layer == layer].report.dropna().to_numpy(float) for layer in layers]
    parts = ax.violinplot(data, positions=layers, widths=0.7, showextrema=False)
    for body in parts["bodies"]:
        body.set_facecolor("#c9c9c9")
        body.set_alpha(0.7)
    markers = {"TD error": ("^", "#d1495b"), "Q difference": ("o", "#0b6e99")}
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
           title="each latent and its partner (grey) against the TD and Q latents")
    ax.grid(axis="x", visible=False)
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    return fig
