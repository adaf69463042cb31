"""Chapter 13's figures: the ablation ground truth per head, and every method's AUC against it."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import ROLE_COLOURS, new_figure

# The trained network's methods in blues and other hues; the controls in the control colour's family (random
# directions, shuffled labels, label-free code counts) and the untrained network in the untrained grey.
METHOD_COLOURS = {"SAE codes": ROLE_COLOURS["trained"], "SAE codes, edge votes": "#00798c",
                  "attribution patching": "#66a182", "|mean difference|": "#7b5ea7",
                  "random directions": ROLE_COLOURS["control"], "shuffled labels": "#f3d08f",
                  "distinct codes": "#b07d1a", "untrained network": ROLE_COLOURS["untrained"]}
MAX_WIDTH = 10.0  # inches: the page shows a figure at about 8


def _cell(value: float) -> str:
    """A cell's value with two decimals, a value that rounds to zero written 0.00 (not -0.00)."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def plot_head_effects(effects: Any, measure: str = "logp_drop",
                      label: str = "drop in log p(favoured action)") -> Any:
    """One heatmap per ablation (rows) and organism (columns): each head's effect at the decision token, layers down,
    heads across, the value written in each cell; one colour scale per ablation. At most 10 inches wide."""
    ablations = list(dict.fromkeys(effects.ablation))
    organisms = sorted(effects.organism.unique())
    column_width = min(2.3, (MAX_WIDTH - 1.2) / len(organisms))
    fig, axes = new_figure(ncols=len(organisms), nrows=len(ablations), width=column_width * len(organisms) + 1.2,
                           height=2.0 * len(ablations) + 0.4, squeeze=False)
    fontsize = 7 if column_width >= 2 else 5.5
    for row, ablation in enumerate(ablations):
        part = effects[effects.ablation == ablation]
        limit = max(float(part[measure].abs().max()), 1e-9)
        for column, organism in enumerate(organisms):
            ax = axes[row][column]
            grid = part[part.organism == organism].pivot(index="layer", columns="head", values=measure)
            image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
            for (i, j), value in np.ndenumerate(grid.to_numpy()):
                ax.text(j, i, _cell(value), ha="center", va="center", fontsize=fontsize,
                        color="white" if abs(value) > 0.6 * limit else "black")
            ax.set(xticks=range(grid.shape[1]), yticks=range(grid.shape[0]), xlabel="head" if row == len(
                ablations) - 1 else "", ylabel=f"{ablation}\nlayer" if column == 0 else "")
            ax.grid(False)
            if row == 0:
                ax.set_title(f"organism {organism}")
        fig.colorbar(image, ax=axes[row][-1], shrink=0.9, label=label if row == len(ablations) // 2 else None)
    return fig


def plot_method_aucs(rankings: Any, ablation: str = "resample", measure: str = "logp_drop", fraction: float = 0.2,
                     reference: float | None = None, reference_label: str = "") -> Any:
    """One panel per head-vector variant (the paper's mean over positions first): each method's ROC AUC against one
    ground truth, pooled within organisms (bar) and per organism (dots), with chance (0.5, dashed) and an optional
    published value (dotted, in the reference colour); one legend for the figure."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = rankings[(rankings.ablation == ablation) & (rankings.measure == measure)
                    & np.isclose(rankings.fraction, fraction)]
    present = list(dict.fromkeys(rows.variant))
    variants = [v for v in ("mean", "decision") if v in present] + [v for v in present if v not in ("mean", "decision")]
    methods = [m for m in METHOD_COLOURS if m in set(rows.method)]
    fig, axes = new_figure(ncols=len(variants), width=min(MAX_WIDTH, 4.2 * len(variants)),
                           height=0.42 * len(methods) + 1.4, squeeze=False, sharey=True)
    for ax, variant in zip(axes[0], variants):
        mine = rows[rows.variant == variant]
        for y, method in enumerate(methods):
            found = mine[mine.method == method]
            if found.empty:
                continue
            pooled = found[found.organism == "pooled"].roc_auc.iloc[0]
            ax.barh(y, pooled, color=METHOD_COLOURS[method], alpha=0.85, height=0.65)
            each = found[found.organism != "pooled"].roc_auc.to_numpy(float)
            ax.plot(each, np.full(len(each), y), "o", color="black", markersize=3.5, alpha=0.8)
        ax.axvline(0.5, color="black", linestyle="--", linewidth=1)
        if reference is not None:
            ax.axvline(reference, color=ROLE_COLOURS["reference"], linestyle=":", linewidth=1.6)
        ax.set(xlim=(0, 1.02), yticks=range(len(methods)), yticklabels=methods, xlabel="ROC AUC",
               title=f"head vector: {'mean over positions' if variant == 'mean' else 'decision token'}")
        ax.grid(axis="y", visible=False)
    axes[0][0].invert_yaxis()  # the paper's method on top (the panels share their y axis: invert once)
    handles = [Patch(color="0.55", alpha=0.85, label="pooled within organisms (bar)"),
               Line2D([], [], marker="o", color="black", linestyle="none", markersize=3.5, label="one organism"),
               Line2D([], [], color="black", linestyle="--", linewidth=1, label="chance (0.5)")]
    if reference is not None:
        handles.append(Line2D([], [], color=ROLE_COLOURS["reference"], linestyle=":", linewidth=1.6,
                              label=f"{reference_label} ({reference:g})" if reference_label else f"{reference:g}"))
    fig.legend(handles=handles, frameon=False, fontsize=8, loc="outside lower center", ncols=2)
    return fig
