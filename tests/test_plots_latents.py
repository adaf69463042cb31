"""The figures of chapters 7 to 9: every series in its role's colour, intervals drawn, one legend per figure."""

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd

from tdsae.plots import ROLE_COLOURS, plot_layer_profile, plot_population, plot_population_profiles, plot_reference_sweep
from tdsae.plots.latents import figure_legend, plot_edit_tracking


def profile_rows(shift=0.0):
    rows = []
    for model, base in (("trained", 0.4), ("untrained", 0.2)):
        for units in ("SAE latent", "residual dimension"):
            for layer in (1, 2, 3):
                r = base + shift + 0.01 * layer
                rows.append({"model": model, "units": units, "layer": layer, "r_report": -r if units != "SAE latent"
                             else r, "low": -r - 0.05 if units != "SAE latent" else r - 0.05,
                             "high": -r + 0.05 if units != "SAE latent" else r + 0.05})
    return pd.DataFrame(rows)


def colours_of(ax):
    return {mcolors.to_hex(line.get_color()) for line in ax.get_lines()}


def test_layer_profile_uses_role_colours_and_can_leave_the_legend_to_the_figure():
    fig = plot_layer_profile(profile_rows(), "TD", reference=0.87, reference_label="reward alone", legend=False)
    ax = fig.axes[0]
    assert colours_of(ax) == {ROLE_COLOURS["trained"], ROLE_COLOURS["untrained"], ROLE_COLOURS["reference"]}
    assert ax.get_legend() is None and ax.get_ylim() == (0, 1)
    assert len(ax.collections) == 4  # one 95% band per line
    legend = figure_legend(fig)
    assert "reward alone" in [t.get_text() for t in legend.get_texts()]
    assert plot_layer_profile(profile_rows(), "TD").axes[0].get_legend() is not None  # chapter 10's call


def test_reference_sweep_draws_intervals_and_labels_the_papers_alpha():
    sweep = pd.DataFrame([{"alpha": a, "gamma": g, "r_report": 0.4 - a / 10, "low": 0.35 - a / 10,
                           "high": 0.45 - a / 10} for g in (0.5, 0.99) for a in (0.03, 0.1, 0.3)])
    fig = plot_reference_sweep(sweep, 0.1, "TD", paper_gamma=0.99)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "the paper's alpha = 0.1" in labels and "gamma = 0.99 (the paper's)" in labels
    assert len(fig.axes[0].containers) == 2  # an error-bar container per discount
    assert fig.get_size_inches()[0] <= 10


def test_population_profiles_fit_the_page_with_one_legend():
    fig = plot_population_profiles({0: {"a": profile_rows(), "b": profile_rows()},
                                    1: {"a": profile_rows(0.05), "b": profile_rows(0.05)}}, member="walker")
    assert fig.get_size_inches()[0] <= 10 and len(fig.legends) == 1
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert "mean over walkers, trained" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_population_markers_take_row_colours_and_own_intervals():
    values = pd.DataFrame({0: [0.1, -0.2], 1: [0.2, -0.1]}, index=["trained", "untrained"])
    low, high = values - 0.05, values + 0.05
    low.loc["untrained", 1] = np.nan
    fig = plot_population(values, "x", intervals=(low, high), colours={"untrained": ROLE_COLOURS["untrained"]})
    ax = fig.axes[0]
    faces = {mcolors.to_hex(c) for scatter in ax.collections for c in scatter.get_facecolors()}
    assert faces == {ROLE_COLOURS["trained"], ROLE_COLOURS["untrained"]}
    own = [line for line in ax.get_lines() if line.get_linewidth() == 1.1 and len(line.get_xdata()) == 2]
    assert len(own) == 3  # the NaN interval is left out
    assert "mean over organisms, 95% t-interval" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert fig.get_size_inches()[0] <= 10
    plot_population(values.iloc[:, :1], "x", reference=0.85, reference_label="target")  # a population of one


def test_edit_tracking_shows_the_change_from_the_unedited_reading_with_intervals():
    def tracking(drop):
        return pd.DataFrame([{"edited": name, "latents": which, "factor": f, "layer": layer,
                              "r": 0.5 - (drop if which == "target" else 0.01) * (1 - f) / 21}
                             for name in ("TD", "Q") for which in ("target", "control")
                             for f in (1.0, 0.0, -5.0, -20.0) for layer in (2, 3)])
    fig = plot_edit_tracking({0: tracking(0.1), 1: tracking(0.2), 2: tracking(0.15)})
    assert len(fig.axes) == 2 and len(fig.legends) == 1 and fig.get_size_inches()[0] <= 10
    ax = fig.axes[0]
    assert {ROLE_COLOURS["trained"], ROLE_COLOURS["control"]} <= colours_of(ax)
    assert len(ax.containers) == 2  # the means, with intervals over organisms
    mean_target = ax.containers[0].lines[0].get_ydata()
    assert mean_target[list(ax.containers[0].lines[0].get_xdata()).index(1.0)] == 0
