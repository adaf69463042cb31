"""Figures of the organism's training and of the model's behaviour (chapters 2 to 4)."""

from __future__ import annotations

from typing import Any

from tdsae.plots.core import new_figure


def plot_training_loss(losses: Any, tasks: Any, checkpoints: Any = (), window: int = 20) -> Any:
    """Next-token loss against step (log x), one running-mean line per task, checkpoints marked."""
    import numpy as np

    losses, tasks = np.asarray(losses, float), np.asarray(tasks)
    fig, ax = new_figure(width=6.4, height=3.4)
    palette = {"twostep": "#0b6e99", "gridworld": "#d1495b", "graph": "#66a182"}
    for task in sorted(set(tasks)):
        steps = np.nonzero(tasks == task)[0]
        kernel = np.ones(min(window, len(steps))) / min(window, len(steps))
        smooth = np.convolve(losses[steps], kernel, mode="valid")
        ax.plot(steps[len(steps) - len(smooth):] + 1, smooth, label=task, color=palette.get(task))
    for step in checkpoints:
        ax.axvline(max(step, 1), color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel("optimizer step (dotted: saved checkpoints)")
    ax.set_ylabel(f"next-token loss (running mean of {window})")
    ax.legend(frameon=False)
    return fig


def plot_choice_agreement(comparisons: dict[str, Any], controls: dict[str, Any] | None = None) -> Any:
    """Organism vs generating agent choice probabilities, one hexbin panel per task (r in the title).

    Args: comparisons: task -> tdsae.organism.ChoiceComparison; controls: task -> the same for a
    control model (e.g. the untrained checkpoint), whose r is added to the title.
    """
    fig, axes = new_figure(ncols=len(comparisons), width=4.6 * len(comparisons), height=4.2, squeeze=False)
    for ax, (task, c) in zip(axes[0], comparisons.items()):
        ax.hexbin(c.agent_probs.ravel(), c.model_probs.ravel(), gridsize=30, bins="log", cmap="Blues",
                  extent=(0, 1, 0, 1), mincnt=1)
        ax.plot([0, 1], [0, 1], color="0.4", linewidth=0.8, linestyle="--")
        title = f"{task}: r = {c.r:.2f}"
        if controls and task in controls:
            title += f" (untrained {controls[task].r:.2f})"
        ax.set_title(title)
        ax.set_xlabel("generating agent's choice probability")
        ax.set_ylabel("organism's choice probability")
        ax.set_aspect("equal")
    return fig


def plot_stay_probabilities(stay: Any, title: str = "") -> Any:
    """Bar plot of P(stay) by previous reward and transition, with 95% CIs over experiments.

    Args: stay: frame from tdsae.behaviour.stay_probabilities, with an extra "agent" column.
    """
    import seaborn as sns

    agents = list(dict.fromkeys(stay["agent"]))
    fig, axes = new_figure(ncols=len(agents), width=3.0 * len(agents), height=3.2, sharey=True, squeeze=False)
    for ax, agent in zip(axes[0], agents):
        sns.barplot(stay[stay.agent == agent], x="reward", y="stay", hue="transition", errorbar=("ci", 95),
                    order=["rewarded", "unrewarded"], hue_order=["common", "rare"],
                    palette=["#0b6e99", "#edae49"], ax=ax)
        ax.set_title(agent)
        ax.set_xlabel("previous episode")
        ax.set_ylabel("P(repeat first choice)")
        ax.set_ylim(0, 1)
        if ax is not axes[0][-1]:
            ax.get_legend().remove()
        else:
            ax.legend(title="transition", frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def plot_bic_differences(differences: Any, title: str = "", ax: Any = None) -> Any:
    """Per-subject BIC of each model minus Q-learning's: points, means and 95% CIs (> 0 favours Q-learning).

    Args: differences: tidy frame with columns model, delta_bic (one row per model x subject).
    """
    import seaborn as sns

    fig = None
    if ax is None:
        fig, ax = new_figure(width=5.5, height=3.4)
    order = list(dict.fromkeys(differences["model"]))
    sns.stripplot(differences, y="model", x="delta_bic", order=order, color="0.7", size=2.5, jitter=0.25, ax=ax)
    sns.pointplot(differences, y="model", x="delta_bic", order=order, errorbar=("ci", 95), color="#d1495b",
                  linestyle="none", markers="D", ax=ax)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_xscale("symlog", linthresh=2)
    ax.set_xlabel("BIC(model) - BIC(Q-learning)  (> 0: Q-learning better)")
    ax.set_ylabel("")
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure


def plot_recovery(table: Any, names: tuple[str, ...], title: str = "", axes: Any = None) -> Any:
    """True against fitted parameter per subject, one panel per parameter, identity line dashed.

    Args: table: RecoveryResult.table (true_<name>, fit_<name> columns).
    """
    import numpy as np

    fig = None
    if axes is None:
        fig, axes = new_figure(ncols=len(names), width=3.4 * len(names), height=3.3, squeeze=False)
        axes = axes[0]
    for ax, name in zip(axes, names):
        true, fit = table[f"true_{name}"], table[f"fit_{name}"]
        ax.scatter(true, fit, s=10, color="#0b6e99", alpha=0.7)
        low, high = float(min(true.min(), fit.min())), float(max(true.max(), fit.max()))
        ax.plot([low, high], [low, high], color="0.4", linewidth=0.8, linestyle="--")
        ax.set_title(f"{title} {name}: r = {np.corrcoef(true, fit)[0, 1]:.2f}".strip())
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"fitted {name}")
        if name == "beta":
            ax.set_xscale("log")
            ax.set_yscale("log")
    return fig if fig is not None else axes[0].figure


def plot_model_recovery(recovery: Any, title: str = "", ax: Any = None) -> Any:
    """Heatmap of the share of simulated subjects each fitted model wins (rows: generating model).

    Args: recovery: tidy frame from tdsae.behaviour.recover_models (generator, fitted, fraction).
    """
    import seaborn as sns

    fig = None
    if ax is None:
        fig, ax = new_figure(width=4.2, height=3.4)
    order = list(dict.fromkeys(recovery["generator"]))
    grid = recovery.pivot(index="generator", columns="fitted", values="fraction").loc[order, order]
    sns.heatmap(grid, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="Blues", cbar=False, ax=ax)
    ax.set_xlabel("best model by BIC")
    ax.set_ylabel("model that generated the data")
    if title:
        ax.set_title(title)
    return fig if fig is not None else ax.figure


def plot_effects(effects: Any, measures: tuple[str, ...], title: str = "") -> Any:
    """Paired effects with their 95% intervals: one panel per measure, one row per condition.

    Args: effects: rows of condition, measure, effect, low, high (tdsae.interventions.effects_against).
    """
    fig, axes = new_figure(ncols=len(measures), width=4.2 * len(measures), height=1.2 + 0.5 * effects.condition.nunique())
    for ax, measure in zip(_axes_list(axes), measures):
        part = effects[effects.measure == measure].reset_index(drop=True)
        rows = list(range(len(part)))[::-1]
        ax.errorbar(part.effect, rows, xerr=[part.effect - part.low, part.high - part.effect], fmt="o", color="black",
                    capsize=3)
        ax.axvline(0, color="0.5", linestyle="--", linewidth=0.9)
        ax.set_yticks(rows, list(part.condition))
        ax.set(xlabel=f"change in {measure.replace('_', ' ')}", ylim=(-0.7, len(part) - 0.3))
    fig.suptitle(title)
    return fig


def _axes_list(axes: Any) -> list:
    """A list of axes whether new_figure returned one or several."""
    import numpy as np

    return list(np.atleast_1d(axes).flat)
