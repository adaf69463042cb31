"""Figures of the tasks, the reference agents and the presets (chapters 0 and 1)."""

from __future__ import annotations

from typing import Any

import matplotlib.patches

from tdsae.plots.core import PALETTE, new_figure
from tdsae.stats import mean_ci

# How a series key reads in a legend (keys not listed are shown as they are).
AGENT_LABELS = {"lm": "language model", "qlearner": "Q-learner", "model_based": "model-based planner",
                "wsls": "win-stay-lose-shift", "copy_best": "copy the best episode", "random": "random agent"}
TASK_TITLES = {"twostep": "Two-Step Task", "gridworld": "Grid World", "graph": "Graph Learning"}
# Two series that are neither a network nor a reference (e.g. rewarded and unrewarded outcomes) get colours that no
# role uses, so that blue, grey, yellow and red keep their meaning.
NEUTRAL_PAIR = ("#5e3c99", "#66a182")


def plot_activation_footprint(gib: dict[str, float], ram_gib: float) -> Any:
    """Bar chart (log scale) of GiB of harvested activations per preset against this machine's RAM.

    Every bar has the same colour (the presets are the categories, named on the x axis); the value is printed on
    each bar and the RAM is a labelled dashed line.
    """
    fig, ax = new_figure(width=6.4, height=3.6)
    names = list(gib)
    ax.bar(names, [gib[n] for n in names], color="#66a182", width=0.6)
    ax.axhline(ram_gib, color="k", linestyle="--", linewidth=1, label=f"this machine's memory ({ram_gib:.0f} GiB)")
    ax.set_yscale("log")
    ax.set_ylim(min(gib.values()) / 3, max(max(gib.values()), ram_gib) * 6)
    ax.set_xlabel("preset")
    ax.set_ylabel("residual activations (GiB, fp32, log scale)")
    ax.set_title("One SAE training set at every layer, by preset")
    for i, n in enumerate(names):
        ax.text(i, gib[n] * 1.15, f"{gib[n]:.3g} GiB", ha="center", va="bottom", fontsize=9)
    ax.legend(frameon=False, loc="upper left")
    return fig


def plot_curves_with_ci(curves: dict[str, Any], xlabel: str, ylabel: str, title: str,
                        shade_until: int | None = None, ax: Any = None, labels: dict[str, str] | None = None,
                        colours: dict[str, str] | None = None, legend: bool = True) -> Any:
    """Mean and 95% t-interval band (over experiments, the rows) per series of ``[n_experiments, n_points]``
    arrays against point index (1-based).

    ``shade_until`` greys the first points (the random-policy episodes), with a legend entry. A series is
    coloured by ``colours``, else by the book's agent palette, and labelled by ``labels``, else by
    AGENT_LABELS, else by its key. ``legend=False`` leaves the legend to the caller (one per figure when
    panels share their series: see plot_reward_curves).
    """

    fig = None
    if ax is None:
        fig, ax = new_figure()
    for i, (key, values) in enumerate(curves.items()):
        mean, low, high = mean_ci(values)
        x = range(1, len(mean) + 1)
        colour = (colours or {}).get(key) or PALETTE.get(key) or f"C{i}"
        label = (labels or {}).get(key) or AGENT_LABELS.get(key, key)
        ax.plot(x, mean, label=label, color=colour, linewidth=1.8)
        ax.fill_between(x, low, high, color=colour, alpha=0.2, linewidth=0)
    if shade_until:  # a legend entry, not a text in the plot, which lines could cross
        ax.axvspan(0.5, shade_until + 0.5, color="0.9", zorder=0, label="played at random")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(frameon=False, ncols=2, fontsize=8)
    return fig if fig is not None else ax.figure


def plot_reward_curves(rewards: dict[str, dict[str, Any]], shade_until: int | None = None,
                       labels: dict[str, str] | None = None, ylabel: str = "reward per episode",
                       xlabel: str = "episode") -> Any:
    """One panel per task of plot_curves_with_ci (mean and 95% band over experiments per agent), side by side
    at the book's width, with one legend below both panels.

    Args: rewards: task name -> {agent key: [n_experiments, n_episodes] rewards}; labels: agent key -> legend
    text (defaults: AGENT_LABELS); shade_until: random-policy episodes to grey.
    """
    fig, axes = new_figure(ncols=len(rewards), width=10.0 if len(rewards) > 1 else 6.4, height=3.8,
                           squeeze=False)
    for ax, (task, curves) in zip(axes[0], rewards.items()):
        plot_curves_with_ci(curves, xlabel, ylabel, TASK_TITLES.get(task, task), shade_until, ax=ax,
                            labels=labels, legend=False)
    handles, texts = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncols=len(texts), frameon=False, fontsize=9)
    return fig


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
    fig, ax = new_figure(width=3.6, height=4.0)
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(size - 0.5, -0.5)
    ax.set_xticks(range(size))
    ax.set_yticks(range(size))
    ax.set_aspect("equal")
    for state, label, colour in [(start, "start", NEUTRAL_PAIR[1]), (goal, "goal", "#f4a582")]:
        r, c = divmod(state, size)
        ax.add_patch(matplotlib.patches.Rectangle((c - 0.5, r - 0.5), 1, 1, color=colour, alpha=0.6))
        ax.text(c, r, label, ha="center", va="center", fontsize=9)
    if path:
        rows, cols = zip(*(divmod(s, size) for s in path))
        ax.plot(cols, rows, color="k", marker=".", linewidth=1, label=f"path ({len(path) - 1} moves)")
        ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title("Grid World", fontsize=10)
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
    colours = [NEUTRAL_PAIR[1], NEUTRAL_PAIR[0], "#c994c7", "#bdbdbd"]  # categories, not roles
    ax.scatter(*xy.T, s=260, c=[colours[c % len(colours)] for c in communities], zorder=2, edgecolors="k")
    for (x, y), name in zip(xy, names):
        ax.text(x, y - 0.27, name, ha="center", va="top", fontsize=8)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title("Graph Learning: three communities", fontsize=10)
    return fig


def plot_matrix(matrix: Any, title: str, labels: list[str] | None = None, cmap: str = "viridis",
                xlabel: str = "", ylabel: str = "", colour_label: str = "") -> Any:
    """A heatmap of a square matrix (e.g. a successor representation) with a labelled colour bar."""
    fig, ax = new_figure(width=5.0, height=4.2)
    image = ax.imshow(matrix, cmap=cmap)
    fig.colorbar(image, ax=ax, shrink=0.8, label=colour_label or None)
    labels = [str(i) for i in range(len(matrix))] if labels is None else labels
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(False)
    ax.set_title(title, fontsize=10)
    return fig
