"""Figures of chapters 0 to 3: book width, role-free colours, labelled lines, one legend per figure, intervals."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tdsae import plots
from tdsae.stats import mean_ci

MAX_WIDTH = 10.0  # inches: the page shows about 8


def _legend_texts(legend):
    return [t.get_text() for t in legend.get_texts()]


def test_curves_with_ci_labels_agents_in_words_and_takes_colours_and_labels():
    rng = np.random.default_rng(0)
    curves = {"qlearner": rng.random((10, 8)), "custom": rng.random((10, 8))}
    fig = plots.plot_curves_with_ci(curves, "episode", "reward", "t", 3, colours={"custom": "#123456"},
                                    labels={"custom": "my series"})
    ax = fig.axes[0]
    assert _legend_texts(ax.get_legend())[:2] == ["Q-learner", "my series"]
    assert ax.lines[1].get_color() == "#123456"
    mean, _, _ = mean_ci(curves["qlearner"])
    np.testing.assert_allclose(ax.lines[0].get_ydata(), mean)
    assert len(ax.collections) == 2  # one 95% band per series
    assert "played at random" in _legend_texts(ax.get_legend())  # the grey band is in the legend


def test_curves_with_ci_without_legend_leaves_it_to_the_caller():
    fig = plots.plot_curves_with_ci({"random": np.ones((3, 4))}, "x", "y", "t", legend=False)
    assert fig.axes[0].get_legend() is None


def test_reward_curves_two_panels_at_book_width_with_one_shared_legend():
    rng = np.random.default_rng(1)
    rewards = {task: {"lm": rng.random((5, 6)), "random": rng.random((5, 6))} for task in ("twostep", "gridworld")}
    fig = plots.plot_reward_curves(rewards, 2, labels={"lm": "model (organism)"})
    assert fig.get_figwidth() <= MAX_WIDTH
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    assert _legend_texts(fig.legends[0]) == ["model (organism)", "random agent", "played at random"]
    assert [ax.get_title() for ax in fig.axes] == ["Two-Step Task", "Grid World"]


def test_activation_footprint_one_bar_colour_and_a_labelled_memory_line():
    fig = plots.plot_activation_footprint({"tiny": 0.01, "smol": 1.2, "small": 2.3, "full": 44.5}, 24.0)
    ax = fig.axes[0]
    assert fig.get_figwidth() <= MAX_WIDTH
    assert len({tuple(bar.get_facecolor()) for bar in ax.patches}) == 1
    assert any("memory" in text for text in _legend_texts(ax.get_legend()))


def test_training_loss_lines_start_at_each_task_and_every_line_is_in_the_legend():
    tasks = np.array(["twostep", "graph"] * 50)
    losses = np.where(tasks == "graph", 3.0, 1.0) + np.linspace(0, 1, 100)
    fig = plots.plot_training_loss(losses, tasks, checkpoints=[0, 10, 50], window=5, floors={"floor": 1.39})
    ax = fig.axes[0]
    by_label = {line.get_label(): line for line in ax.lines}
    assert by_label["graph walk"].get_xdata()[0] == 2 and by_label["Two-Step"].get_xdata()[0] == 1
    graph = losses[tasks == "graph"]
    np.testing.assert_allclose(by_label["graph walk"].get_ydata()[[0, 9]], [graph[0], graph[5:10].mean()])
    assert ax.get_legend() is None and len(fig.legends) == 1  # below the plot, clear of the lines
    assert {"Two-Step", "graph walk", "floor", "saved checkpoint"} <= set(_legend_texts(fig.legends[0]))
    assert by_label["floor"].get_color() == plots.ROLE_COLOURS["reference"]


def test_choice_agreement_shares_one_colour_scale_and_labels_the_diagonal():
    rng = np.random.default_rng(2)
    comparison = {task: SimpleNamespace(agent_probs=rng.random((n, 2)), model_probs=rng.random((n, 2)), r=0.5)
                  for task, n in (("twostep", 400), ("gridworld", 40))}
    fig = plots.plot_choice_agreement(comparison, comparison)
    assert fig.get_figwidth() <= MAX_WIDTH
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    limits = {(hexes.norm.vmin, hexes.norm.vmax) for ax in panels for hexes in ax.collections}
    assert len(limits) == 1
    assert panels[0].get_title().startswith("Two-Step Task: r = 0.50 (untrained 0.50)")
    assert "exact agreement" in _legend_texts(panels[0].get_legend())


def test_stay_probabilities_bars_carry_t_intervals_over_experiments():
    rng = np.random.default_rng(3)
    rows = [{"experiment": e, "reward": reward, "transition": transition, "stay": rng.random(), "agent": agent}
            for agent in ("lm", "qlearner", "model_based", "wsls") for e in range(12)
            for reward in ("rewarded", "unrewarded") for transition in ("common", "rare")]
    stay = pd.DataFrame(rows)
    fig = plots.plot_stay_probabilities(stay, "title", labels={"lm": "model"})
    assert fig.get_figwidth() <= MAX_WIDTH
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    first = fig.axes[0]
    assert first.get_title() == "model"
    values = stay.query("agent == 'lm' and reward == 'rewarded' and transition == 'common'").stay
    mean, low, high = mean_ci(values.to_numpy())
    assert first.patches[0].get_height() == pytest.approx(mean)
    segments = first.collections[0].get_segments()[0]  # the first bar's error bar
    assert sorted(segments[:, 1]) == pytest.approx(sorted([low, high]))


def test_matrix_and_gridworld_label_their_axes():
    fig = plots.plot_matrix(np.eye(3), "m", xlabel="future", ylabel="current", colour_label="visits")
    assert fig.axes[0].get_xlabel() == "future" and fig.axes[1].get_ylabel() == "visits"
    fig = plots.plot_gridworld(5, 0, 24, [0, 1, 2])
    assert "path (2 moves)" in _legend_texts(fig.axes[0].get_legend())
