"""Figures of the residual stream (chapter 5)."""

from __future__ import annotations

from typing import Any

from tdsae.plots.core import new_figure


def plot_norms_by_layer(norms: Any, ax: Any = None) -> Any:
    """Mean L2 norm of the residual stream by layer, one line per task and position kind.

    Args: norms: DataFrame with columns task, kind, layer, norm (one row per stored vector or a
    mean per group; seaborn draws the mean and a 95% interval).
    """
    import seaborn as sns

    if ax is None:
        fig, ax = new_figure(width=6.0, height=3.4)
    else:
        fig = ax.figure
    sns.lineplot(norms, x="layer", y="norm", hue="task", style="kind", markers=True, errorbar=("ci", 95), ax=ax)
    ax.set(xlabel="layer (0 = embeddings)", ylabel="mean L2 norm", yscale="log")
    ax.set_xticks(sorted(norms["layer"].unique()))
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_projection(coords: Any, colour: Any, title: str, colour_label: str, ax: Any = None) -> Any:
    """Scatter of 2-d coordinates (PCA, MDS) coloured by a per-point value or category.

    Args: coords [n, 2]; colour [n] numbers (colour bar) or labels (legend).
    """
    import numpy as np
    import seaborn as sns

    if ax is None:
        fig, ax = new_figure(width=4.6, height=4.0)
    else:
        fig = ax.figure
    colour = np.asarray(colour)
    size = 8 if len(coords) > 200 else 60  # a handful of points (nodes) should be seen
    numeric = np.issubdtype(colour.dtype, np.number) and len(np.unique(colour)) > 8
    if numeric:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, s=size, cmap="coolwarm", alpha=0.7, linewidths=0)
        fig.colorbar(points, ax=ax, label=colour_label, shrink=0.8)
    else:
        sns.scatterplot(x=coords[:, 0], y=coords[:, 1], hue=colour.astype(str), s=size, alpha=0.7, linewidth=0,
                        ax=ax, palette="deep")
        ax.legend(title=colour_label, frameon=False, fontsize=8, markerscale=2)
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
    return fig
