"""The figures of chapters 10 to 13 on small synthetic tables: at most 10 inches wide, one colour per role,
one legend per figure, and every dashed or dotted line named in it."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tdsae import plots
from tdsae.plots import ROLE_COLOURS
from tdsae.plots.circuits import METHOD_COLOURS

matplotlib.use("Agg")
RNG = np.random.default_rng(0)
STEPS = [0, 10, 30, 100, 300, 1500]


def _width(fig) -> float:
    return float(fig.get_size_inches()[0])


def _legend_texts(fig) -> set[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return {text.get_text() for legend in legends for text in legend.get_texts()}


def _same_colour(a, b) -> bool:
    return np.allclose(matplotlib.colors.to_rgba(a)[:3], matplotlib.colors.to_rgba(b)[:3])


def test_method_colours_give_each_control_its_role_colour():
    assert METHOD_COLOURS["SAE codes"] == ROLE_COLOURS["trained"]
    assert METHOD_COLOURS["untrained network"] == ROLE_COLOURS["untrained"]
    assert METHOD_COLOURS["random directions"] == ROLE_COLOURS["control"]
    assert ROLE_COLOURS["reference"] not in METHOD_COLOURS.values()  # red is the paper's value only


def _head_effects(n_organisms: int) -> pd.DataFrame:
    rows = [{"organism": organism, "ablation": ablation, "layer": layer, "head": head,
             "logp_drop": float(RNG.normal(0, 0.1))}
            for organism in range(n_organisms) for ablation in ("zero", "mean", "resample")
            for layer in range(4) for head in range(4)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_organisms", [1, 3, 8])
def test_head_effects_stay_within_ten_inches_and_print_no_negative_zero(n_organisms):
    effects = _head_effects(n_organisms)
    effects.loc[0, "logp_drop"] = -0.001
    fig = plots.plot_head_effects(effects)
    assert _width(fig) <= 10.0
    assert "-0.00" not in {text.get_text() for ax in fig.axes for text in ax.texts}


def test_method_aucs_name_chance_and_the_papers_value_in_one_legend():
    rows = [{"organism": organism, "method": method, "variant": variant, "ablation": "resample",
             "measure": "logp_drop", "fraction": 0.2, "roc_auc": float(RNG.uniform())}
            for organism in ("pooled", 0, 1, 2) for method in METHOD_COLOURS for variant in ("mean", "decision")]
    fig = plots.plot_method_aucs(pd.DataFrame(rows), reference=0.868, reference_label="O'Neill & Bui, IOI")
    assert _width(fig) <= 10.0
    texts = _legend_texts(fig)
    assert "chance (0.5)" in texts and "O'Neill & Bui, IOI (0.868)" in texts and "one organism" in texts
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    dotted = [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]
    assert dotted and _same_colour(dotted[0].get_color(), ROLE_COLOURS["reference"])


def _diagonal() -> pd.DataFrame:
    comparisons = [("ceiling", "organism 0", "organism 0, SAE seed 1"), ("test", "organism 0", "organism 1"),
                   ("test", "organism 0", "organism 2"), ("floor", "organism 0", "untrained")]
    rows = []
    for rung, a, b in comparisons:
        for layer in (1, 2, 3, 4):
            row = {"rung": rung, "a": a, "b": b, "layer": layer, "pairing": "one-to-one"}
            for column in ("share_above", "svcca_intended", "rsa", "cka"):
                row[column] = float(RNG.uniform())
            row["svcca_intended_null_high"] = row["rsa_null_high"] = 0.15
            rows.append(row)
    return pd.DataFrame(rows)


def test_ladder_is_two_panels_a_row_with_one_legend_naming_the_null():
    measures = {"share_above": ("share", "share"), "svcca_intended": ("SVCCA", "r"), "rsa": ("RSA", "r"),
                "cka": ("CKA", "CKA")}
    fig = plots.plot_ladder(_diagonal(), measures)
    assert _width(fig) <= 10.0
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert any("shuffled null" in text for text in _legend_texts(fig))
    colours = {line.get_color() for ax in fig.axes for line in ax.get_lines()}
    assert {ROLE_COLOURS["trained"], ROLE_COLOURS["untrained"], ROLE_COLOURS["control"]} <= colours


def test_layer_grid_and_tracked_pairing_stay_within_ten_inches():
    grid = pd.DataFrame([{"layer_a": a, "layer_b": b, "share_above": 0.5, "svcca_intended": 0.6, "rsa": 0.4,
                          "cka": 0.7} for a in (1, 2, 3, 4) for b in (1, 2, 3, 4)])
    fig = plots.plot_layer_grid(grid, {"share_above": "share", "svcca_intended": "SVCCA", "rsa": "RSA",
                                       "cka": "CKA"}, ("organism 0", "organism 1"))
    assert _width(fig) <= 10.0
    partners = pd.DataFrame({"layer": np.repeat([1, 2], 50), "report": RNG.uniform(-0.2, 1, 100)})
    td_q = pd.DataFrame([{"a": "organism 0", "b": "organism 1", "quantity": quantity, "layer": layer,
                          "r": 0.5, "matched": layer == 1} for quantity in ("TD error", "Q difference")
                         for layer in (1, 2)])
    fig = plots.plot_tracked_pairing(partners, td_q)
    assert _width(fig) <= 10.0
    assert {"no correlation", "every latent with its one-to-one partner"} <= _legend_texts(fig)


def _behaviour() -> pd.DataFrame:
    return pd.DataFrame({"step": STEPS, "r": RNG.uniform(size=6), "icl": RNG.normal(size=6) * 0.1,
                         "icl_low": -0.2, "icl_high": 0.1})


def test_emergence_names_its_reference_line_in_one_legend():
    fig = plots.plot_emergence({0: _behaviour(), 1: _behaviour()}, {"r": ("imitation", "r"), "icl": ("ICL", "nats")},
                               references={"icl": 0.0}, reference_label="zero: no in-context learning")
    assert _width(fig) <= 10.0
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    assert {"organism 0", "organism 1", "zero: no in-context learning"} <= _legend_texts(fig)


def test_seed_strengths_and_sae_metrics_stay_within_ten_inches_on_an_honest_scale():
    strengths = pd.DataFrame([{"panel": panel, "layer": layer, "sae_seed": seed, "step": step,
                               "r_report": float(RNG.uniform())}
                              for panel in ("a", "b", "c") for layer in (1, 2) for seed in (0, 1) for step in STEPS])
    fig = plots.plot_seed_strengths(strengths, ["a", "b", "c"])
    assert _width(fig) <= 10.0
    assert {"SAE seed 0", "SAE seed 1", "layer 1"} <= _legend_texts(fig)
    metrics = pd.DataFrame([{"layer": layer, "step": step, "explained_variance": 0.8 + 0.01 * layer,
                             "l0": 80.0 + step / 100, "frac_alive": 0.9} for layer in (1, 2) for step in STEPS])
    fig = plots.plot_sae_metrics(metrics)
    assert _width(fig) <= 10.0
    ev, l0, alive = fig.axes[:3]
    assert ev.get_ylim()[0] == 0 and alive.get_ylim()[0] == 0 and l0.get_ylim()[0] == 0


def test_level_shares_traces_and_timeline_borrow_no_role_colour_and_name_the_settling_bar():
    shares = pd.DataFrame({"concept-level": 0.1, "token-level": 0.6, "unexplained": 0.2, "dead": 0.1},
                          index=STEPS)
    fig = plots.plot_level_shares(shares, reference={10: 0.05, 1500: 0.46}, reference_label="Inaba et al.")
    bars = {matplotlib.colors.to_hex(patch.get_facecolor()) for patch in fig.axes[0].patches}
    assert not bars & {ROLE_COLOURS[role] for role in ("trained", "untrained", "control", "reference")}
    trace = pd.DataFrame({"step": STEPS[::-1], "cosine_to_final": np.linspace(1, 0, 6)})
    fig = plots.plot_traces({"organism 0: Q (layer 2)": trace}, threshold=0.9)
    assert "settling bar (cosine 0.9)" in _legend_texts(fig)
    emergence = pd.DataFrame({"imitation": [100, None], "Q-value latent": [30, 1500]}, index=[0, 1])
    assert _width(plots.plot_emergence_timeline(emergence, STEPS)) <= 10.0


def test_effects_draw_the_random_latent_in_the_control_colour_and_name_zero():
    effects = pd.DataFrame([{"condition": condition, "measure": measure, "effect": 0.0, "low": -0.01,
                             "high": 0.01} for condition in ("TD latent", "matched random latent")
                            for measure in ("reward", "value_coupling")])
    fig = plots.plot_effects(effects, ("reward", "value_coupling"), title="scaling")
    assert _width(fig) <= 10.0
    assert "no change" in _legend_texts(fig)
    colours = {matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].get_lines()}
    assert {ROLE_COLOURS["trained"], ROLE_COLOURS["control"]} <= colours
