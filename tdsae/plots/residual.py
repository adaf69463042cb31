"""Figures of the residual stream (chapter 5)."""

from __future__ import annotations

from typing import Any

from tdsae.plots.core import ROLE_COLOURS, new_figure


def plot_norms_by_layer(norms: Any, axes: Any = None) -> Any:
    """Mean L2 norm of the residual stream by layer: one panel per task (shared log y axis), one line per
    position kind, each mean with its 95% interval over vectors.

    Args: norms: DataFrame with columns task, kind, layer, norm (one row per stored vector); axes: one per
    task (made if None).
    """
    import numpy as np

    from_here = axes is None
    tasks = list(dict.fromkeys(norms["task"]))
    if from_here:
        fig, axes = new_figure(ncols=len(tasks), width=min(10.0, 4.8 * len(tasks)), height=3.6, sharey=True,
                               squeeze=False)
        axes = axes[0]
    styles = {"decision": ("-", "o"), "outcome": ("--", "X")}
    for ax, task in zip(axes, tasks):
        part = norms[norms["task"] == task]
        for kind, rows in part.groupby("kind", sort=True):
            line, marker = styles.get(kind, (":", "s"))
            grouped = rows.groupby("layer")["norm"]
            mean, std, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
            half = 1.96 * std / np.sqrt(n)  # many tokens per layer: the normal interval of the mean
            ax.errorbar(mean.index, mean, yerr=half, linestyle=line, marker=marker, color=ROLE_COLOURS["trained"],
                        capsize=3, label=f"{kind} tokens")
        ax.set(title=task, xlabel="layer (0 = embeddings)", yscale="log")
        ax.set_xticks(sorted(part["layer"].unique()))
    axes[0].set_ylabel("mean L2 norm (log scale)")
    axes[0].legend(frameon=False, fontsize=8.5, loc="lower right")
    return axes[0].figure


def plot_projection(coords: Any, colour: Any, title: str, colour_label: str, ax: Any = None,
                    palette: Any = None, legend: bool = True) -> Any:
    """Scatter of 2-d coordinates (PCA, MDS) coloured by a per-point value or category.

    Args: coords [n, 2]; colour [n] numbers (colour bar) or labels (legend, in sorted order); palette: a
    seaborn palette name or list for labels ("deep" if None; "Paired" suits labels that come in pairs);
    legend: draw the legend (pass False on all panels but one). On a figure of its own the legend sits
    beside the points, where it hides none of them.
    """
    import numpy as np
    import seaborn as sns

    own_figure = ax is None
    if own_figure:
        fig, ax = new_figure(width=6.4, height=4.2)
    else:
        fig = ax.figure
    colour = np.asarray(colour)
    size = 8 if len(coords) > 200 else 60  # a handful of points (nodes) should be seen
    numeric = np.issubdtype(colour.dtype, np.number) and len(np.unique(colour)) > 8
    if numeric:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=colour, s=size, cmap="coolwarm", alpha=0.7, linewidths=0)
        fig.colorbar(points, ax=ax, label=colour_label, shrink=0.8)
    else:
        labels = colour.astype(str)
        sns.scatterplot(x=coords[:, 0], y=coords[:, 1], hue=labels, hue_order=sorted(set(labels)), s=size, alpha=0.7,
                        linewidth=0, ax=ax, palette=palette or "deep", legend=legend)
        if legend:
            where = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if own_figure else {}
            ax.legend(title=colour_label, frameon=False, fontsize=8, markerscale=2 if size < 20 else 1, **where)
    ax.set(title=title, xlabel="component 1", ylabel="component 2")
    return fig


def plot_probe_by_layer(readout: Any, n: int, chance: float = 0.5, ax: Any = None) -> Any:
    """Held-out probe accuracy by layer, the real labels against shuffled ones, each with a 95% binomial
    interval over the ``n`` scored rows, and chance marked. The y axis runs from 0 to 1.

    Args: readout: DataFrame indexed by layer with a column "reward" (the trained network's vectors, real
    labels) and a column "shuffled reward (control)"; n: rows scored at each layer.
    """
    import numpy as np

    if ax is None:
        fig, ax = new_figure(width=6.4, height=3.6)
    colours = {"reward": ROLE_COLOURS["trained"], "shuffled reward (control)": ROLE_COLOURS["control"]}
    for column in readout.columns:
        accuracy = readout[column].to_numpy(float)
        half = 1.96 * np.sqrt(accuracy * (1 - accuracy) / n)
        ax.errorbar(readout.index, accuracy, yerr=half, marker="o", capsize=3, label=column,
                    color=colours.get(column, "black"))
    ax.axhline(chance, color="0.4", linestyle=":", linewidth=1, label=f"chance ({chance:.0%})")
    ax.set(xlabel="layer (0 = embeddings)", ylabel="held-out probe accuracy", ylim=(0, 1.03),
           xticks=list(readout.index))
    handles, labels = ax.get_legend_handles_labels()
    chance_first = labels[0].startswith("chance")  # matplotlib lists plain lines before error bars
    order = list(range(1, len(labels))) + [0] if chance_first else list(range(len(labels)))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], frameon=False, fontsize=8.5,
              loc="lower right")
    return ax.figure
