"""Figures of sparse autoencoders (chapter 6)."""

from __future__ import annotations

from typing import Any

from tdsae.plots.core import new_figure


def plot_sparsity_frontier(sweep: Any, topk: Any = None, chosen: float | None = None, ax: Any = None) -> Any:
    """Held-out explained variance against L0, one line per layer across L1 coefficients.

    Args: sweep: rows of l1, layer, l0, explained_variance; topk: the same columns plus k (drawn as
    crosses); chosen: the L1 coefficient the analysis uses (ringed).
    """
    import seaborn as sns

    if ax is None:
        fig, ax = new_figure(width=6.2, height=3.8)
    else:
        fig = ax.figure
    palette = dict(zip(sorted(sweep.layer.unique()), sns.color_palette("viridis", sweep.layer.nunique())))
    for layer, part in sweep.sort_values("l1").groupby("layer"):
        ax.plot(part.l0, part.explained_variance, marker="o", color=palette[layer], label=f"layer {layer}, ReLU + L1")
        if chosen is not None:
            pick = part[part.l1 == chosen]
            ax.scatter(pick.l0, pick.explained_variance, s=140, facecolors="none", edgecolors="black", zorder=3)
    first = sweep[sweep.layer == sweep.layer.min()].sort_values("l1")
    for _, row in first.iterrows():
        ax.annotate(f"β={row.l1:g}", (row.l0, row.explained_variance), fontsize=7, xytext=(4, -10),
                    textcoords="offset points")
    if topk is not None:
        for layer, part in topk.groupby("layer"):
            ax.scatter(part.l0, part.explained_variance, marker="x", s=40, color=palette.get(layer, "black"),
                       label=f"layer {layer}, TopK" if layer == topk.layer.min() else None)
    ax.set(xscale="log", xlabel="L0 (active latents per vector)", ylabel="held-out explained variance")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    return fig


def plot_metrics_by_layer(metrics: Any, columns=("explained_variance", "l0", "frac_alive", "ce_loss_score")) -> Any:
    """One small panel per metric against layer. Args: metrics: DataFrame indexed by layer."""
    fig, axes = new_figure(ncols=len(columns), width=3.0 * len(columns), height=2.8)
    for ax, column in zip(axes, columns):
        ax.plot(metrics.index, metrics[column], marker="o")
        ax.set(xlabel="layer", title=column, xticks=list(metrics.index))
    return fig


def plot_training_logs(logs: dict, column: str = "mse_loss") -> Any:
    """Training curves of several SAEs. Args: logs: {label: log DataFrame with step and column}."""
    fig, ax = new_figure(width=5.5, height=3.2)
    for label, log in logs.items():
        ax.plot(log.step, log[column], label=label)
    ax.set(xlabel="step", ylabel=column, yscale="log")
    ax.legend(frameon=False, fontsize=8)
    return fig
