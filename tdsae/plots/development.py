"""Figures of how an organism's latents and behaviour change over training (chapter 11).

Training steps run from 0 (the untrained network) over three decades, so the step axis is symmetric-log:
linear below 10, logarithmic above, and step 0 gets its own place at the left.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import ROLE_COLOURS, figure_legend, new_figure
from tdsae.plots.population import ORGANISM_MARKERS

# Categories, not roles: none of them borrows a role colour (trained, untrained, control, reference).
LEVEL_COLOURS = {"concept-level": "#00798c", "token-level": "#a99bd0", "unexplained": "#dcdcdc", "dead": "#4d4d4d"}
UNIT_INTERVAL = {"explained_variance", "frac_alive"}  # SAE metrics drawn on their whole 0-1 scale


def _step_axis(ax: Any, steps) -> None:
    """Symmetric-log x axis with a tick at every checkpoint."""
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlim(-1, max(steps) * 1.4)  # no empty negative half, room for the last marker
    ax.set_xticks(sorted(steps), [str(s) for s in sorted(steps)])
    ax.set_xlabel("training step (checkpoint)")
    ax.grid(axis="x", visible=False)


def plot_emergence(series: dict, panels: dict, references: dict | None = None,
                   reference_label: str = "no difference from step 0") -> Any:
    """One panel per measure, one line per organism, against the training step; one legend for the figure.

    Args: series: {organism: DataFrame with a "step" column and one column per measure}; panels: {column:
    (title, y label)} in drawing order; references: {column: y of a dashed reference line} (e.g. 0), named
    ``reference_label`` in the legend. Columns named c + "_low" and c + "_high" next to a measure c are drawn as its
    95% band.
    """
    references = references or {}
    ncols = min(len(panels), 2)  # two panels a row: four side by side would be too small to read
    nrows = -(-len(panels) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=4.6 * ncols, height=3.3 * nrows, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (column, (title, ylabel)) in zip(axes.flat, panels.items()):
        steps = set()
        for i, (organism, table) in enumerate(series.items()):
            part = table.sort_values("step")
            steps |= set(part.step)
            ax.plot(part.step, part[column], marker=ORGANISM_MARKERS[i % len(ORGANISM_MARKERS)], color=f"C{i}",
                    label=f"organism {organism}")
            if f"{column}_low" in part and part[f"{column}_low"].notna().any():
                ax.fill_between(part.step, part[f"{column}_low"], part[f"{column}_high"], color=f"C{i}", alpha=0.12,
                                linewidth=0)
        if column in references:
            ax.axhline(references[column], color="0.5", linestyle="--", linewidth=0.9, label=reference_label)
        _step_axis(ax, steps)
        ax.set(title=title, ylabel=ylabel)
    figure_legend(fig, ncol=4, axes=axes.flat, fontsize=8)
    return fig


def plot_seed_strengths(strengths: Any, panels) -> Any:
    """The best latent's report-half |r| per layer against the training step, for every SAE seed: solid for the
    first seed, dashed for the others, so SAE variance shows beside the change over training; one legend.

    Args: strengths: CheckpointStudy.strengths of one organism; panels: the panels to draw, in order.
    """
    from matplotlib.lines import Line2D

    fig, axes = new_figure(ncols=len(panels), width=min(10.0, 3.3 * len(panels)), height=3.6, squeeze=False)
    seeds = sorted(strengths.sae_seed.unique())
    for ax, panel in zip(axes[0], panels):
        part = strengths[strengths.panel == panel]
        for i, layer in enumerate(sorted(part.layer.unique())):
            for seed in seeds:
                line = part[(part.layer == layer) & (part.sae_seed == seed)].sort_values("step")
                ax.plot(line.step, line.r_report.abs(), color=f"C{i}", marker="o", markersize=3.5,
                        linestyle="-" if seed == seeds[0] else "--",
                        label=f"layer {layer}" if seed == seeds[0] else None)
        _step_axis(ax, part.step.unique())
        ax.set(title=panel, ylabel="|r| of the best latent (report half)" if ax is axes[0][0] else "",
               ylim=(0, 1))
        ax.title.set_fontsize(9.5)
    styles = [Line2D([], [], color="0.3", linestyle="-" if seed == seeds[0] else "--", label=f"SAE seed {seed}")
              for seed in seeds]
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles + styles, labels + [s.get_label() for s in styles], frameon=False, fontsize=8,
               loc="outside lower center", ncols=min(6, len(handles) + len(styles)))
    return fig


def plot_sae_metrics(metrics: Any, columns=("explained_variance", "l0", "frac_alive")) -> Any:
    """SAE quality against the training step: the mean over organisms and SAE seeds, one line per layer; shares
    (explained variance, latents alive) on their whole 0-1 scale, L0 from zero; one legend.

    Args: metrics: concatenated CheckpointStudy.sae_metrics (any number of organisms).
    """
    titles = {"explained_variance": "explained variance (held out)", "l0": "L0 (active latents per vector)",
              "frac_alive": "share of latents alive"}
    fig, axes = new_figure(ncols=len(columns), width=min(10.0, 3.3 * len(columns)), height=3.3, squeeze=False)
    for ax, column in zip(axes[0], columns):
        lowest = 0.0
        for i, (layer, part) in enumerate(metrics.groupby("layer")):
            mean = part.groupby("step")[column].mean()
            lowest = min(lowest, float(np.nanmin(mean.to_numpy(float))))
            ax.plot(mean.index, mean.to_numpy(), marker="o", markersize=3.5, color=f"C{i}", label=f"layer {layer}")
        _step_axis(ax, metrics.step.unique())
        ax.set(title=titles.get(column, column.replace("_", " ")))
        if column in UNIT_INTERVAL:  # a share below zero (a held-out explained variance can be) stays in view
            ax.set_ylim(lowest - 0.02 if lowest < 0 else 0, 1.02)
        else:
            ax.set_ylim(bottom=min(0, lowest))
    figure_legend(fig, ncol=6, axes=axes[0], fontsize=8)
    return fig


def plot_level_shares(shares: Any, reference: dict | None = None, reference_label: str = "") -> Any:
    """Stacked share of latents at each level against the checkpoint, with reference points for the concept-level
    share (e.g. another study's).

    Args: shares: DataFrame [step x level] of shares (rows sum to 1); reference: {x position (a step): share}.
    """
    fig, ax = new_figure(width=7.0, height=4.0)
    positions = np.arange(len(shares))
    bottom = np.zeros(len(shares))
    for level in shares.columns:
        ax.bar(positions, shares[level], bottom=bottom, color=LEVEL_COLOURS.get(level), label=level, width=0.7)
        bottom += shares[level].to_numpy(float)
    if reference:
        ax.scatter([list(shares.index).index(step) for step in reference], list(reference.values()), marker="*",
                   s=120, color=ROLE_COLOURS["reference"], zorder=3, label=reference_label)
    ax.set_xticks(positions, [str(s) for s in shares.index])
    ax.set(xlabel="training step (checkpoint)", ylabel="share of sampled latents", ylim=(0, 1))
    ax.legend(frameon=False, fontsize=8, bbox_to_anchor=(0.5, -0.2), loc="upper center", ncol=3)
    ax.grid(axis="x", visible=False)
    return fig


def plot_traces(traces: dict, threshold: float | None = None) -> Any:
    """Cosine of each traced latent's ancestor with its final direction, against the training step.

    Args: traces: {label: tdsae.latents.trace_back table}; threshold: a dashed line (the settling bar), labelled.
    """
    fig, ax = new_figure(width=6.4, height=4.2)
    steps = set()
    for i, (label, trace) in enumerate(traces.items()):
        part = trace.sort_values("step")
        steps |= set(part.step)
        ax.plot(part.step, part.cosine_to_final, marker=ORGANISM_MARKERS[i % len(ORGANISM_MARKERS)], color=f"C{i}",
                label=label)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", linestyle="--", linewidth=0.9, label=f"settling bar (cosine {threshold:g})")
    _step_axis(ax, steps)
    ax.set(ylabel="cosine with the final direction", ylim=(min(-0.2, ax.get_ylim()[0]), 1.05))
    figure_legend(fig, ncol=2, axes=[ax], fontsize=8)
    return fig


def plot_emergence_timeline(emergence: Any, steps) -> Any:
    """When each measure appears, organism by organism: one row per organism, one marker per measure at the
    checkpoint from which it beats the untrained network for good, "never" to the right of the last checkpoint.

    Args: emergence: DataFrame [organism x measure] of steps (None or NaN: never); steps: the checkpoints.
    """
    steps = sorted(steps)
    positions = {step: i for i, step in enumerate(steps)}
    never = len(steps)
    markers = ("o", "s", "D", "^", "v", "P", "X")
    fig, ax = new_figure(width=7.2, height=1.2 + 0.55 * len(emergence))
    offsets = np.linspace(-0.25, 0.25, emergence.shape[1])
    for j, measure in enumerate(emergence.columns):
        x = [never if step is None or (isinstance(step, float) and np.isnan(step)) else positions[int(step)]
             for step in emergence[measure]]
        y = np.arange(len(emergence)) + offsets[j]
        ax.scatter(x, y, marker=markers[j % len(markers)], s=55, color=f"C{j}", label=measure, zorder=3)
    ax.axvline(never - 0.5, color="0.6", linestyle=":", linewidth=1)  # the caption names it
    ax.set_xticks(list(range(len(steps))) + [never], [str(s) for s in steps] + ["never"])
    ax.set_yticks(np.arange(len(emergence)), [f"organism {i}" for i in emergence.index])
    ax.set(xlabel="checkpoint from which the measure beats the untrained network for good",
           xlim=(-0.5, never + 0.5), ylim=(len(emergence) - 0.5, -0.5))
    ax.legend(frameon=False, fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    ax.grid(axis="y", visible=False)
    return fig
