"""Figures of the organism's training and of the model's behaviour (chapters 2 to 4)."""

from __future__ import annotations

from typing import Any

from tdsae.plots.core import ROLE_COLOURS, new_figure
from tdsae.stats import mean_ci


def plot_training_loss(losses: Any, tasks: Any, checkpoints: Any = (), window: int = 20,
                       floors: dict[str, float] | None = None) -> Any:
    """Next-token loss against step (log x), one running-mean line per task, checkpoints marked.

    The running mean is over the last ``window`` batches of the same task (fewer at the start, so that every
    line starts at its task's first batch). Args: checkpoints: steps drawn as dotted grey lines (one legend
    entry); floors: label -> loss drawn as a dashed line in the reference colour (e.g. the lowest loss a
    perfect learner of a task could reach).
    """
    import numpy as np
    from matplotlib.lines import Line2D

    losses, tasks = np.asarray(losses, float), np.asarray(tasks)
    fig, ax = new_figure(width=6.4, height=3.6)
    palette = {"twostep": "#00798c", "gridworld": "#5e3c99", "graph": "#66a182"}  # tasks, not roles
    names = {"twostep": "Two-Step", "gridworld": "Grid World", "graph": "graph walk"}
    for task in sorted(set(tasks)):
        steps = np.nonzero(tasks == task)[0]
        running = np.cumsum(losses[steps])
        running[window:] = running[window:] - running[:-window]
        smooth = running / np.minimum(np.arange(1, len(steps) + 1), window)
        ax.plot(steps + 1, smooth, label=names.get(task, task), color=palette.get(task), linewidth=1.6)
    for label, value in (floors or {}).items():
        ax.axhline(value, color=ROLE_COLOURS["reference"], linestyle="--", linewidth=1, label=label)
    for step in checkpoints:
        ax.axvline(max(step, 1), color="0.6", linewidth=0.8, linestyle=":")
    handles, labels = ax.get_legend_handles_labels()
    if len(checkpoints):
        handles.append(Line2D([], [], color="0.6", linewidth=0.8, linestyle=":"))
        labels.append("saved checkpoint")
    ax.set_xscale("log")
    ax.set_xlabel("optimizer step (log scale)")
    ax.set_ylabel(f"next-token loss (nats; running\nmean of {window} batches)")
    fig.legend(handles, labels, frameon=False, fontsize=8.5, loc="outside lower center", ncols=3)
    return fig


def plot_choice_agreement(comparisons: dict[str, Any], controls: dict[str, Any] | None = None,
                          model_label: str = "organism") -> Any:
    """Model vs generating agent choice probabilities, one hexbin panel per task (r in the title), on one
    shared log colour scale of decisions per hexagon, with the diagonal of exact agreement labelled.

    Args: comparisons: task -> tdsae.organism.ChoiceComparison; controls: task -> the same for a
    control model (e.g. the untrained checkpoint), whose r is added to the title; model_label: how the y
    axis names the model.
    """
    from matplotlib.colors import LogNorm

    titles = {"twostep": "Two-Step Task", "gridworld": "Grid World", "graph": "Graph Learning"}
    n = len(comparisons)
    fig, axes = new_figure(ncols=n, width=min(10.0, 4.4 * n + 1.0), height=4.4, squeeze=False)
    bins = []
    for ax, (task, c) in zip(axes[0], comparisons.items()):
        bins.append(ax.hexbin(c.agent_probs.ravel(), c.model_probs.ravel(), gridsize=30, cmap="Blues",
                              norm=LogNorm(), extent=(0, 1, 0, 1), mincnt=1, linewidths=0))
        ax.plot([0, 1], [0, 1], color="0.3", linewidth=0.9, linestyle="--", label="exact agreement")
        title = f"{titles.get(task, task)}: r = {c.r:.2f}"
        if controls and task in controls:
            title += f" (untrained {controls[task].r:.2f})"
        ax.set_title(title)
        ax.set_xlabel("generating agent's choice probability")
        ax.set_ylabel(f"{model_label}'s choice probability")
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.set_aspect("equal")
    top = max(float(b.get_array().max()) for b in bins)
    for b in bins:
        b.set_norm(LogNorm(vmin=1, vmax=max(top, 2)))
    fig.colorbar(bins[-1], ax=list(axes[0]), shrink=0.8, label="decisions per hexagon (log scale)")
    axes[0][0].legend(frameon=False, fontsize=8.5, loc="upper left")
    return fig


def plot_stay_probabilities(stay: Any, title: str = "", labels: dict[str, str] | None = None) -> Any:
    """Bar plot of P(stay) by previous reward and transition: the mean over experiments with its 95%
    t-interval, one panel per agent, one legend for the figure.

    Args: stay: frame from tdsae.behaviour.stay_probabilities, with an extra "agent" column; labels: agent
    -> panel title (default: the agent's key).
    """
    import numpy as np

    agents = list(dict.fromkeys(stay["agent"]))
    fig, axes = new_figure(ncols=len(agents), width=min(10.0, 2.5 * len(agents) + 0.4), height=3.5, sharey=True,
                           squeeze=False)
    colours = {"common": "#5e3c99", "rare": "#b2abd2"}  # transitions, not roles: dark common, light rare
    for ax, agent in zip(axes[0], agents):
        rows = stay[stay.agent == agent]
        for offset, transition in zip((-0.2, 0.2), ("common", "rare")):
            for x, reward in enumerate(("rewarded", "unrewarded")):
                values = rows.loc[(rows.reward == reward) & (rows.transition == transition), "stay"].to_numpy(float)
                mean, low, high = (float(v) for v in mean_ci(values))
                ax.bar(x + offset, mean, width=0.4, color=colours[transition], edgecolor="white",
                       label=f"{transition} transition" if x == 0 else None)
                if np.isfinite(low):
                    ax.errorbar(x + offset, mean, yerr=[[mean - low], [high - mean]], color="black", capsize=2.5,
                                linewidth=1)
        ax.set_xticks([0, 1], ["rewarded", "unrewarded"])
        ax.set_title((labels or {}).get(agent, agent), fontsize=10)
        ax.set_xlabel("previous episode")
        ax.set_ylim(0, 1)
        ax.grid(axis="x", visible=False)
    axes[0][0].set_ylabel("P(repeat first choice)")
    handles, texts = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, texts, loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_bic_differences(differences: Any, title: str = "", ax: Any = None, legend: bool = True,
                         controls: tuple[str, ...] = ("random",)) -> Any:
    """Per-subject BIC of each model minus Q-learning's: points, means and 95% t intervals over subjects
    (> 0 favours Q-learning), on a symmetric log axis labelled in plain numbers.

    Args: differences: tidy frame with columns model, delta_bic (one row per model x subject); legend:
    draw the legend (one per figure: pass False on all panels but one); controls: models drawn in the
    control colour (random choice is a baseline, not a contender).
    """
    import numpy as np
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    fig = None
    if ax is None:
        fig, ax = new_figure(width=6.4, height=3.6)
    order = list(dict.fromkeys(differences["model"]))
    jitter = np.random.default_rng(0)
    for row, model in enumerate(order):
        values = differences.loc[differences["model"] == model, "delta_bic"].to_numpy(float)
        colour = ROLE_COLOURS["control" if model in controls else "trained"]
        ax.scatter(values, row + jitter.uniform(-0.22, 0.22, len(values)), s=6, color=colour, alpha=0.35,
                   linewidths=0)
        mean, low, high = (float(v) for v in mean_ci(values))
        ax.errorbar(mean, row, xerr=[[mean - low], [high - mean]], fmt="D", color=colour, markersize=6,
                    markeredgecolor="black", markeredgewidth=0.6, capsize=3, elinewidth=1.4, zorder=3)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xscale("symlog", linthresh=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_yticks(range(len(order)), order)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlabel("BIC(model) − BIC(Q-learning) per experiment\n(> 0: Q-learning fits better)")
    ax.set_ylabel("")
    if legend:
        handles = [Line2D([], [], marker="o", linestyle="none", color=ROLE_COLOURS["trained"], alpha=0.5,
                          markersize=4, label="one experiment"),
                   Line2D([], [], marker="D", linestyle="-", color=ROLE_COLOURS["trained"], markeredgecolor="black",
                          label="mean, 95% interval"),
                   Line2D([], [], marker="D", linestyle="-", color=ROLE_COLOURS["control"], markeredgecolor="black",
                          label="random choice (baseline)")]
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure


def plot_recovery(table: Any, names: tuple[str, ...], title: str = "", axes: Any = None,
                  legend: bool = True) -> Any:
    """True against fitted parameter per simulated subject, one panel per parameter, with the identity line.

    Args: table: RecoveryResult.table (true_<name>, fit_<name> columns); title: prefixed to each panel's
    title ("twostep: α, r = 0.91"); axes: one per name; legend: label the points and the identity line on
    the first panel (pass False on all but one row of a grid). A log-scaled parameter (beta) is drawn on
    log axes labelled in plain numbers.
    """
    import numpy as np
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    symbols = {"alpha": "α", "beta": "β", "epsilon": "ε"}
    fig = None
    if axes is None:
        fig, axes = new_figure(ncols=len(names), width=3.2 * len(names), height=3.2, squeeze=False)
        axes = axes[0]
    for i, (ax, name) in enumerate(zip(axes, names)):
        true, fit = table[f"true_{name}"], table[f"fit_{name}"]
        symbol = symbols.get(name, name)
        ax.scatter(true, fit, s=10, color=ROLE_COLOURS["reference"], alpha=0.6, linewidths=0,
                   label="one simulated Q-learner")
        low, high = float(min(true.min(), fit.min())), float(max(true.max(), fit.max()))
        ax.plot([low, high], [low, high], color="0.3", linewidth=0.9, linestyle="--", label="fitted = true")
        r = np.corrcoef(true, fit)[0, 1]
        ax.set_title(f"{title}: {symbol}, r = {r:.2f}" if title else f"{symbol}: r = {r:.2f}")
        ax.set_xlabel(f"true {symbol}")
        ax.set_ylabel(f"fitted {symbol}")
        if name == "beta":
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
                axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
                axis.set_minor_formatter(NullFormatter())
        if legend and i == 0:
            ax.legend(frameon=False, fontsize=8, loc="upper left")
    return fig if fig is not None else axes[0].figure


def plot_model_recovery(recovery: Any, title: str = "", ax: Any = None, ylabel: bool = True) -> Any:
    """Heatmap of the share of simulated subjects each fitted model wins (rows: generating model; each row
    sums to one, so the diagonal is how often the generating model is recovered).

    Args: recovery: tidy frame from tdsae.behaviour.recover_models (generator, fitted, fraction); ylabel:
    name the rows (pass False on panels beside the first).
    """
    import seaborn as sns

    fig = None
    if ax is None:
        fig, ax = new_figure(width=4.6, height=3.6)
    order = list(dict.fromkeys(recovery["generator"]))
    grid = recovery.pivot(index="generator", columns="fitted", values="fraction").loc[order, order]
    sns.heatmap(grid, annot=True, fmt=".0%", vmin=0, vmax=1, cmap="Blues", cbar=False, ax=ax, square=True)
    ax.set_xlabel("best model by BIC")
    ax.set_ylabel("model that generated the data" if ylabel else "")
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure


def plot_effects(effects: Any, measures: tuple[str, ...], title: str = "") -> Any:
    """Paired effects with their 95% intervals: one panel per measure, one row per condition; a condition whose
    name says "random" is drawn in the control colour, the others in the trained colour; the dashed line at zero
    (no change) is named in one legend below the panels. At most 10 inches wide.

    Args: effects: rows of condition, measure, effect, low, high (tdsae.interventions.effects_against).
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    fig, axes = new_figure(ncols=len(measures), width=min(10.0, 4.2 * len(measures)),
                           height=1.6 + 0.5 * effects.condition.nunique())
    for ax, measure in zip(_axes_list(axes), measures):
        part = effects[effects.measure == measure].reset_index(drop=True)
        rows = list(range(len(part)))[::-1]
        for row, (_, one) in zip(rows, part.iterrows()):
            role = "control" if "random" in str(one.condition) else "trained"
            ax.errorbar([one.effect], [row], xerr=[[one.effect - one.low], [one.high - one.effect]], fmt="o",
                        color=ROLE_COLOURS[role], capsize=3)
        ax.axvline(0, color="0.5", linestyle="--", linewidth=0.9)
        ax.set_yticks(rows, list(part.condition))
        ax.set(xlabel=f"change in {measure.replace('_', ' ')}", ylim=(-0.7, len(part) - 0.3))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # tick labels that do not run together
    fig.legend([Line2D([], [], color="0.5", linestyle="--", linewidth=0.9),
                Line2D([], [], color="black", marker="o", linestyle="-")],
               ["no change", "paired effect with its 95% interval"], frameon=False, fontsize=8,
               loc="outside lower center", ncols=2)
    fig.suptitle(title)
    return fig


def _axes_list(axes: Any) -> list:
    """A list of axes whether new_figure returned one or several."""
    import numpy as np

    return list(np.atleast_1d(axes).flat)
