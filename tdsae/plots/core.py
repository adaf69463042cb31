"""The book's figure style and the Figure factory every helper uses (no pyplot global state)."""

from __future__ import annotations

from typing import Any

import matplotlib

PALETTE = {"lm": "#0b6e99", "qlearner": "#d1495b", "random": "#8d8d8d", "model_based": "#edae49",
           "wsls": "#66a182", "copy_best": "#7b5ea7", "hybrid": "#00798c"}
# One meaning per colour in every chapter: the network studied, its untrained twin, a control that is not a network
# (shuffled targets, random latents or directions), and the reference agents' own quantity or a paper's value.
ROLE_COLOURS = {"trained": "#0b6e99", "untrained": "#8d8d8d", "control": "#edae49", "reference": "#d1495b"}
FIGURE_DPI = 150  # the book shows figures at its text width; 150 dpi keeps 9-pt legends sharp there


def apply_style() -> None:
    """Set the book's rcParams explicitly (seaborn whitegrid, readable sizes)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    matplotlib.rcParams.update({
        "figure.dpi": FIGURE_DPI,
        "savefig.dpi": FIGURE_DPI,
        "figure.figsize": (6.4, 3.6),
        "axes.titlesize": 12,
        "axes.labelsize": 11,
        "xtick.labelsize": 10,
        "ytick.labelsize": 10,
        "legend.fontsize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    _show_figures_inline()


def _show_figures_inline() -> None:
    """Let a returned Figure display as a PNG in Jupyter (figures here bypass pyplot)."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import select_figure_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        select_figure_formats(shell, {"png"}, bbox_inches="tight")


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.4, height: float = 3.6,
               **kwargs: Any) -> tuple[Any, Any]:
    """A Figure and its axes, built without pyplot's global figure manager."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def figure_legend(fig: Any, ncol: int = 3, axes: Any = None, fontsize: float = 8.5) -> Any:
    """One legend for the whole figure, below its panels: every labelled line of ``axes`` (default: every panel
    of the figure), each label once; None when nothing is labelled."""
    handles = {}
    for ax in fig.axes if axes is None else axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if not handles:
        return None
    return fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                      ncol=min(ncol, len(handles)), frameon=False, fontsize=fontsize)
