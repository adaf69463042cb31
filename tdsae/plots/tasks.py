"""Figures of the tasks, the reference agents and the presets (chapters 0 and 1)."""

from __future__ import annotations

from typing import Any

import matplotlib.patches

from tdsae.plots.core import PALETTE, new_figure
from tdsae.stats import mean_ci


def plot_activation_footprint(gib: dict[str, float], ram_gib: float) -> Any:
    """Bar chart (log scale) of GiB of harvested activations per preset against this machine's RAM."""
    fig, ax = new_figure(width=5.5, height=3.2)
    names = list(gib)
    ax.bar(names, [gib[n] for n in names], color=["#66a182", "#0b6e99", "#d1495b"][: len(names)])
    ax.axhline(ram_gib, color="k", linestyle="--", linewidth=1)
    ax.text(len(names) - 0.5, ram_gib * 1.15, f"this machine's RAM ({ram_gib:.0f} GiB)", ha="right", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("residual activations (GiB, fp32)")
    ax.set_title("One SAE training set at every layer, by preset")
    for i, n in enumerate(names):
        ax.text(i, gib[n] * 1.1, f"{gib[n]:.3g}", ha="center", va="bottom", fontsize=9)
    return fig


def plot_curves_with_ci(curves: dict[str, Any], xlabel: str, ylabel: str, title: str,
                        shade_until: int | None = None, ax: Any = None) -> Any:
    """Mean and 95% CI band per label of ``[n_experiments, n_points]`` arrays against point index (1-based).

    ``shade_until`` greys the first points (the random-policy episodes).
    """

    fig = None
    if ax is None:
        fig, ax = new_figure()
    for label, values in curves.items():
        mean, low, high = mean_ci(values)
        x = range(1, len(mean) + 1)
        colour = PALETTE.get(label)
        ax.plot(x, mean, label=label, color=colour, linewidth=1.8)
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    if shade_until:
        ax.axvspan(0.5, shade_until + 0.5, color="0.9", zorder=0)
        ax.text(shade_until / 2 + 0.5, ax.get_ylim()[1], "random\nepisodes", ha="center", va="top", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, ncols=2, fontsize=8)
    return fig if fig is not None else ax.figure


def plot_twostep_schematic(p_common: float) -> Any:
    """The Two-Step Task: two spaceships, two planets with two aliens each, common and rare transitions."""
    from matplotlib.patches import FancyBboxPatch

    fig, ax = new_figure(width=6.0, height=3.4)
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 6)

    def box(x: float, y: float, text: str, colour: str) -> None:
        ax.add_patch(FancyBboxPatch((x - 0.7, y - 0.35), 1.4, 0.7, boxstyle="round,pad=0.05", fc=colour, ec="k"))
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    box(5, 5.3, "start", "#eeeeee")
    box(3, 3.8, "ship X", "#cfe3f1")
    box(7, 3.8, "ship Y", "#f6d5d9")
    box(3, 2.0, "planet X", "#cfe3f1")
    box(7, 2.0, "planet Y", "#f6d5d9")
    for x, label in [(2.1, "alien D"), (3.9, "alien F"), (6.1, "alien J"), (7.9, "alien K")]:
        box(x, 0.5, label, "#fff2cc")
    for x in (3, 7):
        ax.annotate("", (x, 4.15), (5, 4.95), arrowprops={"arrowstyle": "->", "color": "k"})
    for (x0, x1, common) in [(3, 3, True), (7, 7, True), (3, 7, False), (7, 3, False)]:
        # seaborn's style draws patch edges white; arrows are patches, so colour them explicitly
        style = {"arrowstyle": "->", "color": "k", "lw": 2.2 if common else 0.9, "linestyle": "-" if common else "--"}
        ax.annotate("", (x1, 2.35), (x0, 3.45), arrowprops=style)
    ax.text(2.35, 2.9, f"common {p_common:.1f}", fontsize=8, ha="right")
    ax.text(5, 3.05, f"rare {1 - p_common:.1f}", fontsize=8, ha="center")
    for x0, xs in [(3, (2.1, 3.9)), (7, (6.1, 7.9))]:
        for x1 in xs:
            ax.annotate("", (x1, 0.85), (x0, 1.65), arrowprops={"arrowstyle": "->", "color": "k"})
    ax.set_title("Two-Step Task: reward probabilities of the aliens drift", fontsize=10)
    return fig


def plot_gridworld(size: int, start: int, goal: int, path: list[int] | None = None) -> Any:
    """A Grid World with its start and goal cells, and optionally one path of visited states."""
    fig, ax = new_figure(width=3.4, height=3.4)
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_xticks(range(size))
    ax.set_yticks(range(size))
    ax.set_aspect("equal")
    for state, label, colour in [(start, "start", "#0b6e99"), (goal, "goal", "#edae49")]:
        r, c = divmod(state, size)
        ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, color=colour, alpha=0.6))
        ax.text(c, r, label, ha="center", va="center", fontsize=9)
    if path:
        rows, cols = zip(*(divmod(s, size) for s in path))
        ax.plot(cols, rows, color="k", marker=".", linewidth=1)
    ax.set_title("Grid World (row, column)", fontsize=10)
    return fig


def plot_graph(adjacency: Any, communities: Any, names: list[str]) -> Any:
    """The community graph on a circle, nodes coloured by community and labelled with their names."""
    import numpy as np

    fig, ax = new_figure(width=4.6, height=4.6)
    # Each community on its own small circle, the three circles on a large one, each rotated
    # so its first and last (boundary) nodes face the neighbouring communities.
    communities = np.asarray(communities)
    n_comm = int(communities.max()) + 1
    xy = np.zeros((len(names), 2))
    for c in range(n_comm):
        members = np.nonzero(communities == c)[0]
        centre_angle = 2 * np.pi * c / n_comm
        centre = 1.6 * np.array([np.cos(centre_angle), np.sin(centre_angle)])
        local = centre_angle + np.pi + 2 * np.pi * (np.arange(len(members)) + 0.5) / len(members)
        xy[members] = centre + 0.7 * np.stack([np.cos(local), np.sin(local)], axis=1)
    for i, j in zip(*np.nonzero(np.triu(adjacency))):
        ax.plot(*xy[[i, j]].T, color="0.6", linewidth=0.8, zorder=1)
    colours = ["#0b6e99", "#d1495b", "#66a182", "#edae49"]
    ax.scatter(*xy.T, s=260, c=[colours[c % len(colours)] for c in communities], zorder=2, edgecolors="k")
    for (x, y), name in zip(xy, names):
        ax.text(x, y - 0.27, name, ha="center", va="top", fontsize=8)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title("Graph Learning: three communities", fontsize=10)
    return fig


def plot_matrix(matrix: Any, title: str, labels: list[str] | None = None, cmap: str = "viridis") -> Any:
    """A heatmap of a square matrix (e.g. a successor representation) with a colour bar."""
    fig, ax = new_figure(width=4.6, height=4.0)
    image = ax.imshow(matrix, cmap=cmap)
    fig.colorbar(image, ax=ax, shrink=0.8)
    labels = [str(i) for i in range(len(matrix))] if labels is None else labels
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.grid(False)
    ax.set_title(title, fontsize=10)
    return fig
