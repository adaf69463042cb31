"""The figures of chapters 4 to 6: readable widths, one colour per role, intervals where there is spread,
every line labelled, axes that do not exaggerate."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from tdsae import plots
from tdsae.plots import ROLE_COLOURS
from tdsae.stats import mean_ci

MAX_WIDTH = 10.0  # inches: the page shows a figure at about 8


def _labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_bic_differences_draws_means_with_t_intervals_and_a_shared_legend():
    rng = np.random.default_rng(0)
    differences = pd.concat([pd.DataFrame({"model": model, "delta_bic": rng.normal(shift, 5, 40)})
                             for model, shift in (("wsls", 20), ("copy_best", -3), ("random", 60))])
    fig, axes = plots.new_figure(ncols=2, width=10, height=3.8)
    plots.plot_bic_differences(differences, "twostep", ax=axes[0], legend=False)
    plots.plot_bic_differences(differences, "gridworld", ax=axes[1])
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    assert axes[0].get_legend() is None
    assert _labels(axes[1]) == ["one experiment", "mean, 95% interval", "random choice (baseline)"]
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["wsls", "copy_best", "random"]
    # the diamonds are the t intervals of tdsae.stats, in the control colour for the random baseline
    bars = [c for c in axes[0].containers]
    mean, low, high = mean_ci(differences[differences.model == "copy_best"].delta_bic.to_numpy())
    x, _ = bars[1].lines[0].get_data()
    assert x[0] == pytest.approx(mean)
    assert to_hex(bars[2].lines[0].get_color()) == ROLE_COLOURS["control"]
    assert to_hex(bars[0].lines[0].get_color()) == ROLE_COLOURS["trained"]
    assert axes[0].get_xscale() == "symlog"


def test_recovery_labels_the_identity_line_and_reads_beta_in_plain_numbers():
    rng = np.random.default_rng(1)
    table = pd.DataFrame({"true_alpha": rng.uniform(0.1, 0.9, 50), "true_beta": rng.uniform(3, 20, 50)})
    table["fit_alpha"], table["fit_beta"] = table.true_alpha + rng.normal(0, 0.05, 50), table.true_beta * 1.1
    fig = plots.plot_recovery(table, ("alpha", "beta"), "twostep")
    alpha_ax, beta_ax = fig.axes
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    assert _labels(alpha_ax) == ["one simulated Q-learner", "fitted = true"]
    assert alpha_ax.get_title().startswith("twostep: α, r = ")
    assert beta_ax.get_xscale() == "log" and beta_ax.get_legend() is None
    fig.canvas.draw()
    assert all("times" not in t.get_text() and "^" not in t.get_text() for t in beta_ax.get_xticklabels())
    fig, axes = plots.new_figure(ncols=2, nrows=2, width=8, height=6.6)
    plots.plot_recovery(table, ("alpha", "beta"), "gridworld", axes=axes[1], legend=False)
    assert axes[1][0].get_legend() is None


def test_model_recovery_writes_shares_as_percentages():
    names = ["qlearning", "copy_best", "wsls"]
    recovery = pd.DataFrame([{"generator": g, "fitted": f, "fraction": 0.8 if g == f else 0.1}
                             for g in names for f in names])
    fig = plots.plot_model_recovery(recovery, "twostep")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("80%") == 3 and texts.count("10%") == 6
    fig, axes = plots.new_figure(ncols=2, width=9, height=3.8)
    plots.plot_model_recovery(recovery, "gridworld", ax=axes[1], ylabel=False)
    assert axes[1].get_ylabel() == ""


def test_norms_by_layer_one_panel_per_task_with_intervals():
    rng = np.random.default_rng(2)
    norms = pd.DataFrame([{"task": task, "kind": kind, "layer": layer, "norm": rng.lognormal(layer, 0.1)}
                          for task in ("twostep", "gridworld") for kind in ("decision", "outcome")
                          for layer in range(5) for _ in range(20)])
    fig = plots.plot_norms_by_layer(norms)
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    assert [ax.get_title() for ax in fig.axes] == ["twostep", "gridworld"]
    assert _labels(fig.axes[0]) == ["decision tokens", "outcome tokens"]
    assert fig.axes[0].get_yscale() == "log"
    assert all(len(c.lines[2]) == 1 for c in fig.axes[0].containers)  # vertical error bars on every mean


def test_projection_keeps_its_signature_and_puts_its_own_legend_beside_the_points():
    rng = np.random.default_rng(3)
    coords = rng.normal(size=(300, 2))
    labels = np.array(["J paid", "J no", "D paid", "D no"])[rng.integers(0, 4, 300)]
    fig = plots.plot_projection(coords, labels, "layer 2", "outcome", palette="Paired")
    legend = fig.axes[0].get_legend()
    assert legend.get_title().get_text() == "outcome"
    assert _labels(fig.axes[0]) == ["D no", "D paid", "J no", "J paid"]
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    # chapter 9 calls it positionally with ax= on panels of its own figure
    fig, axes = plots.new_figure(ncols=3, width=10, height=3.6)
    plots.plot_projection(coords[:15], np.arange(15) // 5, "trained", "community", ax=axes[0])
    plots.plot_projection(coords[:15], np.arange(15) // 5, "untrained", "community", ax=axes[1], legend=False)
    assert axes[0].get_legend() is not None and axes[1].get_legend() is None
    fig = plots.plot_projection(coords, np.linspace(0, 1, 300), "numbers", "episode")
    assert len(fig.axes) == 2  # a colour bar for many distinct numbers


def test_probe_by_layer_shows_role_colours_binomial_intervals_and_chance_on_a_full_axis():
    readout = pd.DataFrame({"reward": [1.0, 0.99, 0.98], "shuffled reward (control)": [0.5, 0.49, 0.52]},
                           index=pd.Index([0, 1, 2], name="layer"))
    fig = plots.plot_probe_by_layer(readout, n=3000)
    ax = fig.axes[0]
    assert ax.get_ylim() == (0, 1.03)
    assert _labels(ax) == ["reward", "shuffled reward (control)", "chance (50%)"]
    trained, control = ax.containers
    assert to_hex(trained.lines[0].get_color()) == ROLE_COLOURS["trained"]
    assert to_hex(control.lines[0].get_color()) == ROLE_COLOURS["control"]
    segments = control.lines[2][0].get_segments()
    half = 1.96 * np.sqrt(0.5 * 0.5 / 3000)
    assert segments[0][1][1] - segments[0][0][1] == pytest.approx(2 * half)


def _sweep():
    rows = []
    for layer in (1, 2, 3):
        for l1, l0, ev in ((1e-5, 250, 0.999), (1, 120, 0.99), (5, 80, 0.93), (10, 50, 0.8)):
            rows.append({"l1": l1, "layer": layer, "l0": l0 + layer, "explained_variance": ev - 0.01 * layer})
    return pd.DataFrame(rows)


def test_sparsity_frontier_legend_names_layers_topk_and_the_chosen_beta():
    topk = pd.DataFrame([{"k": k, "layer": layer, "l0": k, "explained_variance": 0.95}
                         for k in (8, 16) for layer in (1, 2, 3)])
    fig = plots.plot_sparsity_frontier(_sweep(), topk, 5)
    labels = _labels(fig.axes[0])
    assert labels[:3] == ["layer 1, ReLU + L1", "layer 2, ReLU + L1", "layer 3, ReLU + L1"]
    assert labels[3:] == ["TopK (one per layer and k)", "chosen β = 5"]
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    assert {t.get_text() for t in fig.axes[0].texts} >= {"k=8", "k=16", "β=5"}


def test_metrics_by_layer_draws_fractions_on_zero_to_one_and_labels_every_line():
    metrics = pd.DataFrame({"explained_variance": [0.93, 0.92], "l0": [80.0, 90.0], "frac_alive": [0.99, 0.98],
                            "ce_loss_score": [0.999, 0.998], "ce_loss_score_all_tokens": [0.15, 0.2]},
                           index=[1, 2])
    fig = plots.plot_metrics_by_layer(metrics, ("explained_variance", "l0", "frac_alive",
                                                ("ce_loss_score", "ce_loss_score_all_tokens")),
                                      references={"l0": (128, "d_model")}, ncols=2)
    ev, l0, alive, ce = fig.axes
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    assert ev.get_ylim() == (0, 1.05) and alive.get_ylim() == (0, 1.05) and ce.get_ylim() == (0, 1.05)
    assert l0.get_ylim()[0] == 0
    assert _labels(l0) == ["L0 (active latents)", "d_model"]
    assert _labels(ce) == ["own tokens", "every token"]
    assert ce.get_title() == "loss recovered"
    # the old one-row call still works
    assert len(plots.plot_metrics_by_layer(metrics).axes) == 4
