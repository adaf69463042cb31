"""Figures of latents that track TD errors and Q-values (chapters 7 to 10)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tdsae.plots.core import ROLE_COLOURS, figure_legend, new_figure
from tdsae.plots.population import ORGANISM_MARKERS
from tdsae.stats import population_interval

MODEL_COLOURS = {"trained": ROLE_COLOURS["trained"], "untrained": ROLE_COLOURS["untrained"]}
UNIT_STYLES = {"SAE latent": "-", "SAE latent pair": "-.", "residual dimension": ":", "TopK latent": "--"}


def _strength_interval(part: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|r| of each row and its 95% interval, the interval's ends flipped where r is negative."""
    sign = np.sign(part.r_report.to_numpy(float))
    strength = np.abs(part.r_report.to_numpy(float))
    low = np.where(sign < 0, -part.high.to_numpy(float), part.low.to_numpy(float))
    high = np.where(sign < 0, -part.low.to_numpy(float), part.high.to_numpy(float))
    return strength, low, high


def plot_layer_profile(table: Any, title: str, ax: Any = None, reference: float | None = None,
                       reference_label: str = "", legend: bool = True) -> Any:
    """Report-half |r| of the best unit by layer, one line per (model, units), with 95% bands.

    Args: table: tdsae.latents.profile rows; reference: a horizontal line (e.g. the reward's |r|), drawn
    in the reference colour; legend: False when the figure gets one shared legend (figure_legend).
    """
    if ax is None:
        fig, ax = new_figure(width=6.4, height=3.6)
    else:
        fig = ax.figure
    for (model, units), part in table.groupby(["model", "units"], sort=False):
        part = part.sort_values("layer")
        strength, low, high = _strength_interval(part)
        colour = MODEL_COLOURS.get(model, None)
        ax.plot(part.layer, strength, marker="o", markersize=4, linestyle=UNIT_STYLES.get(units, "-"), color=colour,
                label=f"{model}: {units}")
        ax.fill_between(part.layer, low, high, color=colour, alpha=0.12, linewidth=0)
    if reference is not None:
        ax.axhline(abs(reference), color=ROLE_COLOURS["reference"], linestyle="--", linewidth=1.2,
                   label=reference_label or "reference")
    ax.set(title=title, xlabel="layer (0 = embeddings)", ylabel="|r| on report half", ylim=(0, 1))
    ax.set_xticks(sorted(table.layer.unique()))
    if legend:
        ax.legend(frameon=False, fontsize=7)
    return fig


GAMMA_STYLES = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"))


def plot_reference_sweep(sweep: Any, paper_alpha: float, title: str, ax: Any = None, paper_gamma: float | None = None,
                         legend: bool = True) -> Any:
    """|r| of the best unit against the reference learner's alpha, one line per gamma, with 95% intervals.

    Args: sweep: tdsae.latents.reference_sweep rows (alpha, gamma, r_report, low, high); paper_alpha: drawn as
    a labelled dotted line in the reference colour; paper_gamma: the line drawn solid (the paper's discount);
    legend: False when the figure gets one shared legend (figure_legend).
    """
    if ax is None:
        fig, ax = new_figure(width=6.4, height=3.6)
    else:
        fig = ax.figure
    gammas = sorted(sweep.gamma.unique(), key=lambda g: (g != paper_gamma, -g))
    for number, (gamma, (style, marker)) in enumerate(zip(gammas, GAMMA_STYLES * 4)):
        part = sweep[sweep.gamma == gamma].sort_values("alpha")
        strength, low, high = _strength_interval(part)
        shift = 1 + 0.04 * (number - (len(gammas) - 1) / 2)  # side by side on the log axis, bars apart
        alphas = part.alpha.to_numpy(float) * shift
        paper = " (the paper's)" if paper_gamma is not None and np.isclose(gamma, paper_gamma) else ""
        ax.errorbar(alphas, strength, yerr=[strength - low, high - strength], color=ROLE_COLOURS["trained"],
                    linestyle=style, marker=marker, markersize=4.5, capsize=2.5, linewidth=1.2,
                    alpha=1.0 if number == 0 else 0.75, label=f"gamma = {gamma:g}{paper}")
    ax.axvline(paper_alpha, color=ROLE_COLOURS["reference"], linestyle=":", linewidth=1.4,
               label=f"the paper's alpha = {paper_alpha:g}")
    ax.set(title=title, xlabel="reference learner's learning rate alpha", ylabel="|r| on report half", xscale="log")
    ax.set_xticks(sorted(sweep.alpha.unique()), [f"{a:g}" for a in sorted(sweep.alpha.unique())])
    ax.minorticks_off()
    if legend:
        ax.legend(frameon=False, fontsize=8)
    return fig


def plot_population_profiles(profiles_by_organism: dict, units: str = "SAE latent", member: str = "organism") -> Any:
    """One panel per target: every organism's best-unit |r| by layer, trained in colour and its untrained
    control in grey, one marker per organism, and the mean over organisms as a thick line with its 95%
    t-interval over organisms as a band; one legend for the figure.

    Args: profiles_by_organism: {organism: {panel title: tdsae.latents.profile rows}} (the same panels
    for every organism); units: the kind of unit drawn (one of tdsae.latents.UNIT_KINDS); member: what one
    network of the population is called in the legend ("organism", "walker").
    """
    panels = list(next(iter(profiles_by_organism.values())))
    ncols = 2 if len(panels) > 1 else 1
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = new_figure(ncols=ncols, nrows=nrows, width=9.8 if ncols > 1 else 6.4, height=3.1 * nrows + 0.7,
                           squeeze=False, sharey=True)
    for ax, panel in zip(axes.flat, panels):
        for model in ("trained", "untrained"):
            lines = []
            for (organism, profiles), marker in zip(profiles_by_organism.items(), ORGANISM_MARKERS * 8):
                part = profiles[panel]
                part = part[(part.model == model) & (part.units == units)].sort_values("layer")
                lines.append(part.set_index("layer").r_report.abs())
                ax.plot(part.layer, lines[-1].to_numpy(), marker=marker, markersize=4, linewidth=0.8, alpha=0.6,
                        color=MODEL_COLOURS[model], label=f"{member} {organism}, {model}")
            layers = lines[0].index
            stacked = np.array([line.reindex(layers).to_numpy(float) for line in lines])
            mean = stacked.mean(0)
            if len(lines) > 1 and np.isfinite(stacked).all():
                intervals = [population_interval(column) for column in stacked.T]
                ax.fill_between(layers, [i["low"] for i in intervals], [i["high"] for i in intervals],
                                color=MODEL_COLOURS[model], alpha=0.12, linewidth=0)
            ax.plot(layers, mean, linewidth=2.6, color=MODEL_COLOURS[model], label=f"mean over {member}s, {model}")
        ax.set(title=f"{panel}: {units}", xlabel="layer (0 = embeddings)", ylim=(0, 1))
        ax.set_xticks(sorted(layers))
    for ax in axes[:, 0]:
        ax.set_ylabel("|r| on report half")
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    figure_legend(fig, ncol=4)
    return fig


def plot_edit_tracking(tracking_by_organism: dict, title_of: dict | None = None, member: str = "organism") -> Any:
    """How much later layers' tracking changes as the edited latents are scaled, target latents against their
    matched controls: one panel per edited quantity; x the factor applied, y the change in |r| from factor 1
    (the unedited reading), averaged over the layers after the edit. Each organism a thin line (its own
    marker), the mean over organisms thick with its 95% t-interval over organisms as error bars.

    Args: tracking_by_organism: {organism: InterventionStudy.tracking rows (edited, latents "target" /
    "control", factor, layer, r)}; title_of: {edited name: panel title}.
    """
    names = list(dict.fromkeys(name for table in tracking_by_organism.values() for name in table.edited))
    fig, axes = new_figure(ncols=max(1, len(names)), width=9.8 if len(names) > 1 else 6.4, height=3.8,
                           squeeze=False)
    colours = {"target": ROLE_COLOURS["trained"], "control": ROLE_COLOURS["control"]}
    words = {"target": "edited latents", "control": "frequency-matched random latents"}
    for ax, name in zip(axes.flat, names):
        for which in ("target", "control"):
            changes = []
            for (organism, table), marker in zip(tracking_by_organism.items(), ORGANISM_MARKERS * 8):
                part = table[(table.edited == name) & (table.latents == which)]
                if part.empty:
                    continue
                strength = part.assign(r=part.r.abs()).groupby("factor").r.mean()
                change = strength - strength.loc[1.0]
                label = f"each {member} (one marker each), {words[which]}" if not changes else "_nolegend_"
                changes.append(change)
                ax.plot(change.index, change.to_numpy(), marker=marker, markersize=4, linewidth=0.8, alpha=0.55,
                        color=colours[which], label=label)
            if not changes:
                continue
            factors = changes[0].index
            stacked = np.array([c.reindex(factors).to_numpy(float) for c in changes])
            mean = stacked.mean(0)
            if len(changes) > 1 and np.isfinite(stacked).all():
                intervals = [population_interval(column) for column in stacked.T]
                yerr = [mean - [i["low"] for i in intervals], [i["high"] for i in intervals] - mean]
            else:
                yerr = None
            ax.errorbar(factors, mean, yerr=yerr, color=colours[which], linewidth=2.4, marker="o", capsize=3,
                        label=f"mean over {member}s, {words[which]}")
        ax.axhline(0, color="0.4", linewidth=0.8)
        ax.set(xlabel="factor applied to the edited latents (1 = unedited)",
               title=(title_of or {}).get(name, f"{name} latents edited"))
    axes.flat[0].set_ylabel("change in |r| at later layers")
    figure_legend(fig, ncol=2)
    return fig
