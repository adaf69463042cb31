"""Figures of a population of organisms: every organism's value beside the population's mean and interval."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import ROLE_COLOURS, new_figure
from tdsae.stats import population_interval

ORGANISM_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_population(values: Any, xlabel: str, ax: Any = None, reference: float | None = 0.0,
                    reference_label: str = "", title: str = "", intervals: tuple | None = None,
                    colours: dict | None = None, member: str = "organism") -> Any:
    """One row per measure: each organism's value as its own marker (with its own 95% interval where
    given), and the mean over organisms with its 95% t-interval (a black bar; none for a population of one).

    Args: values: DataFrame [measure x organism] (rows drawn top to bottom in order; column names label
    the organisms); reference: a vertical line (grey for a zero line; a labelled one, e.g. a target, in the
    reference colour); intervals: optional (low, high) DataFrames shaped like values, each organism's own
    interval (NaN: none drawn); colours: optional {measure: colour} (e.g. tdsae.plots.ROLE_COLOURS by role),
    else every marker in the trained network's colour; markers tell the organisms apart; member: what one
    organism is called in the legend; xlabel, title: axis text.
    """
    own_figure = ax is None
    if own_figure:
        fig, ax = new_figure(width=8.0, height=1.5 + 0.45 * len(values))
    else:
        fig = ax.figure
    from matplotlib.lines import Line2D

    rows = np.arange(len(values))[::-1]
    row_colour = [(colours or {}).get(name, ROLE_COLOURS["trained"]) for name in values.index]
    markers = dict(zip(values.columns, ORGANISM_MARKERS * 8))
    for column, name in enumerate(values.columns):
        offsets = rows + 0.12 * (column - (values.shape[1] - 1) / 2)
        estimates = values[name].to_numpy(float)
        if intervals is not None:
            low, high = (np.asarray(part[name].reindex(values.index), float) for part in intervals)
            drawn = np.isfinite(low) & np.isfinite(high)
            for y, lo, hi, colour in zip(offsets[drawn], low[drawn], high[drawn], np.array(row_colour)[drawn]):
                ax.plot([lo, hi], [y, y], color=colour, linewidth=1.1, alpha=0.7, zorder=2)
        ax.scatter(estimates, offsets, marker=markers[name], s=30, c=row_colour, alpha=0.9, zorder=3)
    for row, (_, measured) in zip(rows, values.iterrows()):
        interval = population_interval(measured.to_numpy(float))
        if interval["n"] > 1:
            ax.plot([interval["low"], interval["high"]], [row - 0.32] * 2, color="black", linewidth=2.2,
                    solid_capstyle="butt", zorder=2)
        ax.plot([interval["mean"]], [row - 0.32], marker="|", markersize=11, color="black", zorder=2)
    handles = [Line2D([], [], linestyle="", marker=markers[name], color="0.3", label=f"{member} {name}")
               for name in values.columns]
    if intervals is not None:
        handles.append(Line2D([], [], color="0.3", linewidth=1.1, label="its own 95% interval"))
    handles.append(Line2D([], [], color="black", linewidth=2.2, marker="|", markersize=11,
                          label=f"mean over {member}s, 95% t-interval"))
    if reference is not None:
        coloured = bool(reference_label)
        handles.append(ax.axvline(reference, color=ROLE_COLOURS["reference"] if coloured else "0.45",
                                  linestyle="--", linewidth=1.1 if coloured else 0.9,
                                  label=reference_label or f"{reference:g}"))
        if not coloured:
            handles.pop()
    ax.set_yticks(rows, list(values.index))
    ax.set(xlabel=xlabel, title=title, ylim=(-0.7, len(values) - 0.4))
    if own_figure:  # below the panel, so that long row labels keep the panel wide
        fig.legend(handles=handles, frameon=False, fontsize=8, loc="outside lower center",
                   ncol=min(len(handles), 3))
    else:
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="best")
    ax.grid(axis="y", visible=False)
    return fig
