"""Figures of sparse autoencoders (chapter 6)."""

from __future__ import annotations

from typing import Any

from tdsae.plots.core import ROLE_COLOURS, new_figure


def _layer_shades(layers: Any) -> dict:
    """One shade of the trained network's colour per layer, light (shallow) to dark (deep)."""
    import seaborn as sns

    layers = sorted(layers)
    shades = sns.light_palette(ROLE_COLOURS["trained"], n_colors=len(layers) + 2)[2:]
    return dict(zip(layers, shades))


def plot_sparsity_frontier(sweep: Any, topk: Any = None, chosen: float | None = None, ax: Any = None) -> Any:
    """Held-out explained variance against L0, one line per layer across L1 coefficients.

    Args: sweep: rows of l1, layer, l0, explained_variance; topk: the same columns plus k (drawn as
    crosses, k written beside the shallowest layer's); chosen: the L1 coefficient the analysis uses
    (ringed). Layers are shades of one colour, deeper darker; the legend sits beside the axes.
    """
    from matplotlib.lines import Line2D

    if ax is None:
        fig, ax = new_figure(width=8.0, height=4.0)
    else:
        fig = ax.figure
    shades = _layer_shades(sweep.layer.unique())
    for layer, part in sweep.sort_values("l1").groupby("layer"):
        ax.plot(part.l0, part.explained_variance, marker="o", markersize=4, color=shades[layer],
                label=f"layer {layer}, ReLU + L1")
        if chosen is not None:
            pick = part[part.l1 == chosen]
            ax.scatter(pick.l0, pick.explained_variance, s=130, facecolors="none", edgecolors="black", zorder=3)
    first = sweep[sweep.layer == sweep.layer.min()].sort_values("l1")
    for _, row in first.iterrows():
        ax.annotate(f"β={row.l1:g}", (row.l0, row.explained_variance), fontsize=7, xytext=(-6, 6),
                    textcoords="offset points", ha="right", color="0.25")
    handles, _ = ax.get_legend_handles_labels()
    if topk is not None:
        for layer, part in topk.groupby("layer"):
            ax.scatter(part.l0, part.explained_variance, marker="x", s=40, color=shades.get(layer, "black"))
        for _, row in topk[topk.layer == topk.layer.min()].iterrows():
            ax.annotate(f"k={int(row.k)}", (row.l0, row.explained_variance), fontsize=7, xytext=(0, 7),
                        textcoords="offset points", ha="center", color="0.25")
        handles.append(Line2D([], [], marker="x", linestyle="none", color="0.3", label="TopK (one per layer and k)"))
    if chosen is not None:
        handles.append(Line2D([], [], marker="o", markersize=10, markerfacecolor="none", markeredgecolor="black",
                              linestyle="none", label=f"chosen β = {chosen:g}"))
    ax.set(xscale="log", xlabel="L0 (active latents per vector, log scale)", ylabel="held-out explained variance")
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


_METRIC_TITLES = {"explained_variance": "explained variance (held out)", "l0": "L0 (active latents)",
                  "frac_alive": "fraction of latents alive", "ce_loss_score": "loss recovered, own tokens",
                  "ce_loss_score_all_tokens": "loss recovered, every token", "mse": "MSE"}
_FRACTIONS = {"explained_variance", "frac_alive", "ce_loss_score", "ce_loss_score_all_tokens"}


def plot_metrics_by_layer(metrics: Any, columns=("explained_variance", "l0", "frac_alive", "ce_loss_score"),
                          references: dict | None = None, ncols: int | None = None) -> Any:
    """One small panel per metric against layer. Fractions are drawn on 0 to 1, counts from 0.

    Args: metrics: DataFrame indexed by layer; columns: a column name per panel, or a tuple of names drawn
    as labelled lines in one panel; references: {column: (value, label)} drawn as a labelled horizontal line
    in the reference colour (e.g. d_model on the L0 panel); ncols: panels per row (all in one row if None).
    """
    import numpy as np

    references = references or {}
    ncols = ncols or len(columns)
    nrows = -(-len(columns) // ncols)
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=min(10.0, 3.2 * ncols), height=2.7 * nrows,
                           squeeze=False)
    axes = list(np.asarray(axes).flat)
    styles = [("-", "o"), ("--", "s"), (":", "^")]
    for ax, panel in zip(axes, columns):
        names = (panel,) if isinstance(panel, str) else tuple(panel)
        for (line, marker), name in zip(styles, names):
            ax.plot(metrics.index, metrics[name], linestyle=line, marker=marker, color=ROLE_COLOURS["trained"],
                    label=_METRIC_TITLES.get(name, name).split(", ")[-1])
        for name in names:
            if name in references:
                value, label = references[name]
                ax.axhline(value, color=ROLE_COLOURS["reference"], linestyle="--", linewidth=1, label=label)
        if all(name in _FRACTIONS for name in names):
            ax.set_ylim(0, 1.05)
        else:
            top = max([float(metrics[name].max()) for name in names]
                      + [references[name][0] for name in names if name in references])
            ax.set_ylim(0, 1.2 * top)  # room above the highest line for the legend
        title = _METRIC_TITLES.get(names[0], names[0]) if len(names) == 1 else _METRIC_TITLES.get(
            names[0], names[0]).split(", ")[0]
        ax.set(xlabel="layer", title=title, xticks=list(metrics.index))
        if len(names) > 1 or any(name in references for name in names):
            ax.legend(frameon=False, fontsize=7.5, loc="best")
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    return fig


def plot_training_logs(logs: dict, column: str = "mse_loss") -> Any:
    """Training curves of several SAEs. Args: logs: {label: log DataFrame with step and column}."""
    fig, ax = new_figure(width=5.5, height=3.2)
    for label, log in logs.items():
        ax.plot(log.step, log[column], label=label)
    ax.set(xlabel="step", ylabel=column, yscale="log")
    ax.legend(frameon=False, fontsize=8)
    return fig
