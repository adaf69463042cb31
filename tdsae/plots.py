"""Figure helpers: each takes data and returns a matplotlib Figure.

Call :func:`apply_style` once per chapter; nothing here changes global state
at import or calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Any

import matplotlib

PALETTE = {"lm": "#0b6e99", "qlearner": "#d1495b", "random": "#8d8d8d", "model_based": "#edae49",
           "wsls": "#66a182", "copy_best": "#7b5ea7", "hybrid": "#00798c"}


def apply_style() -> None:
    """Set the book's rcParams explicitly (seaborn whitegrid, readable sizes)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "figure.figsize": (6.4, 3.6),
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.fontsize": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 3.6,
               **kwargs: Any) -> tuple[Any, Any]:
    """A Figure and its axes, built without pyplot's global figure manager."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


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
