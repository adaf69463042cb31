"""Figures of a population of organisms: every organism's value beside the population's mean and interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import new_figure
from tdsae.stats import population_interval

ORGANISM_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_population(values: Any, xlabel: str, ax: Any = None, reference: float | None = 0.0,
                    reference_label: str = "", title: str = "") -> Any:
    """One row per measure: each organism's value as its own marker, and the mean over organisms with
    its 95% t-interval (a black bar; none for a population of one).

    Args: values: DataFrame [measure x organism] (rows drawn top to bottom in order; column names label
    the organisms); reference: a vertical line (e.g. 0, or a target); xlabel, title: axis text.
    """
    if ax is None:
        fig, ax = new_figure(width=7.0, height=0.9 + 0.45 * len(values))
    else:
        fig = ax.figure
    rows = np.arange(len(values))[::-1]
    for column, (name, marker) in enumerate(zip(values.columns, ORGANISM_MARKERS * 8)):
        ax.scatter(values[name].to_numpy(float), rows + 0.12 * (column - (values.shape[1] - 1) / 2),
                   marker=marker, s=28, color=f"C{column}", alpha=0.85, label=f"organism {name}", zorder=3)
    for row, (_, measured) in zip(rows, values.iterrows()):
        interval = population_interval(measured.to_numpy(float))
        if interval["n"] > 1:
            ax.plot([interval["low"], interval["high"]], [row - 0.32] * 2, color="black", linewidth=2.2,
                    solid_capstyle="butt", zorder=2)
        ax.plot([interval["mean"]], [row - 0.32], marker="|", markersize=11, color="black", zorder=2)
    if reference is not None:
        ax.axvline(reference, color="0.5", linestyle="--", linewidth=0.9, label=reference_label or None)
    ax.set_yticks(rows, list(values.index))
    ax.set(xlabel=xlabel, title=title, ylim=(-0.7, len(values) - 0.4))
    ax.legend(frameon=False, fontsize=8, loc="best")
    ax.grid(axis="y", visible=False)
    return fig
