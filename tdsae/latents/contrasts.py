"""Chapter 7's tests of one network, in one call, so that every organism of a population gets the same ones.

    result = td_q_contrasts(stores, saes, targets, selection, n_boot=200, seed=0)
    result.profiles["TD error, reward controlled"]   # profile rows of that panel
    result.tests["q_latent_vs_untrained"]            # {"difference", "low", "high", "r_a", "r_b"}

The four panels read TD errors at outcome tokens and Q differences at decision tokens, each plainly and with
the reward (and the step within the episode) regressed out. Each test compares two best units at their own
best layers (chosen on the selection half) on the report half, with a paired bootstrap over experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tdsae.latents.profiles import best_layers, compare_at_best_layers, profile
from tdsae.latents.targets import check_target
from tdsae.stats import correlations
from tdsae.validation import check_count, check_int, check_seed

# panel -> (row kind, target column, reward controlled)
PANELS = {"TD error (outcome token)": ("outcome", "td_error", False),
          "TD error, reward controlled": ("outcome", "td_error", True),
          "Q difference (decision token)": ("decision", "q_diff", False),
          "Q difference, reward controlled": ("decision", "q_diff", True)}
TRAINED_LATENT, UNTRAINED_LATENT = ("trained", "SAE latent"), ("untrained", "SAE latent")
TRAINED_PAIR, UNTRAINED_PAIR = ("trained", "SAE latent pair"), ("untrained", "SAE latent pair")
TRAINED_DIMENSION = ("trained", "residual dimension")
# test -> (panel, unit a, unit b): is a's best unit stronger than b's?
CONTRASTS = {
    "td_partial_latent_vs_dimension": ("TD error, reward controlled", TRAINED_LATENT, TRAINED_DIMENSION),
    "td_partial_latent_vs_untrained": ("TD error, reward controlled", TRAINED_LATENT, UNTRAINED_LATENT),
    "q_latent_vs_untrained": ("Q difference (decision token)", TRAINED_LATENT, UNTRAINED_LATENT),
    "q_pair_vs_untrained": ("Q difference (decision token)", TRAINED_PAIR, UNTRAINED_PAIR),
    "q_pair_vs_dimension": ("Q difference (decision token)", TRAINED_PAIR, TRAINED_DIMENSION),
}


@dataclass
class LatentContrasts:
    """Chapter 7's measurements of one network (and its untrained control) on one task."""

    reward_r: float  # correlation of the reward alone with the TD error at outcome tokens
    profiles: dict  # panel -> profile rows (model, units, layer, unit, partner, r_select, r_report, low, high, ...)
    best: pd.DataFrame  # best_layers of every panel, indexed by (target, model, units)
    tests: dict  # test -> {"difference", "low", "high", "r_a", "r_b"}; "td_latent_vs_reward" has the difference only


def check_contrast_request(entry: str, stores: dict, saes: dict, n_boot, contrast_boot, seed) -> tuple[int, int, int]:
    """What td_q_contrasts and sr_contrasts check first: a trained and an untrained network, counts, a seed."""
    for label in ("trained", "untrained"):
        if label not in stores or label not in saes:
            raise ValueError(f"{entry} needs stores and SAEs labelled 'trained' and 'untrained'; got stores "
                             f"{sorted(stores)} and SAEs {sorted(saes)}")
    return check_int(n_boot, "n_boot", 0), check_count(contrast_boot, "contrast_boot"), check_seed(seed)


def panel_rows(targets: pd.DataFrame, panel: str) -> pd.DataFrame:
    """The rows a panel reads: its kind of token, where its target is defined."""
    if panel not in PANELS:
        raise ValueError(f"unknown panel {panel!r}; choose one of: {', '.join(PANELS)}")
    kind, column, _ = PANELS[panel]
    check_target(targets, column)
    return targets[targets.kind == kind].dropna(subset=[column])


def td_q_contrasts(stores: dict, saes: dict, targets: pd.DataFrame, selection: np.ndarray, *, n_boot: int = 200,
                   contrast_boot: int = 500, seed: int = 0) -> LatentContrasts:
    """Layer profiles of every panel and every test of CONTRASTS for one trained network and its control.

    Args: stores, saes: {"trained": ..., "untrained": ...} as profile takes them (the same episodes);
    targets: reference_targets rows of both kinds; selection: split_experiments' selection half;
    n_boot, contrast_boot: bootstrap resamples of the profiles' and the tests' intervals.
    """
    n_boot, contrast_boot, seed = check_contrast_request("td_q_contrasts", stores, saes, n_boot, contrast_boot, seed)
    outcomes = panel_rows(targets, "TD error (outcome token)")
    reward_r = float(correlations(outcomes[["reward"]].to_numpy(float), outcomes.td_error.to_numpy(float))[0])
    profiles = {panel: profile(stores, saes, panel_rows(targets, panel), target=column, selection=selection,
                               partial=partial, n_boot=n_boot, seed=seed)
                for panel, (_, column, partial) in PANELS.items()}
    best = pd.concat({panel: best_layers(table) for panel, table in profiles.items()}, names=["target"])
    td_best = best.loc[("TD error (outcome token)", *TRAINED_LATENT)]
    tests = {"td_latent_vs_reward": {"difference": abs(td_best.r_report) - abs(reward_r)}}
    for test, (panel, a, b) in CONTRASTS.items():
        _, column, partial = PANELS[panel]
        tests[test] = compare_at_best_layers(stores, saes, best.loc[panel], panel_rows(targets, panel), target=column,
                                             selection=selection, a=a, b=b, partial=partial, n_boot=contrast_boot,
                                             seed=seed)
    return LatentContrasts(reward_r, profiles, best, tests)


SR_PANELS = {"SR TD error at the reached node": "sr_td_error", "norm of the SR TD-error vector": "sr_td_norm"}
SR_CONTRASTS = {"sr_latent_vs_untrained": UNTRAINED_LATENT, "sr_latent_vs_dimension": TRAINED_DIMENSION}


def sr_contrasts(stores: dict, saes: dict, targets: pd.DataFrame, selection: np.ndarray, *, n_boot: int = 200,
                 contrast_boot: int = 500, seed: int = 0) -> LatentContrasts:
    """Chapter 9's SR-TD panels and tests for one walking network and its control, like td_q_contrasts.

    Args: targets: sr_targets rows (SR TD errors at outcome tokens). Returns: LatentContrasts whose tests
    compare the trained network's best SR-TD latent (at the reached node) with the untrained network's best
    latent and with the trained network's best residual dimension; reward_r is NaN (walks have no reward).
    """
    n_boot, contrast_boot, seed = check_contrast_request("sr_contrasts", stores, saes, n_boot, contrast_boot, seed)
    outcomes = targets[targets.kind == "outcome"]
    profiles = {panel: profile(stores, saes, outcomes, target=check_target(targets, column), selection=selection,
                               n_boot=n_boot, seed=seed) for panel, column in SR_PANELS.items()}
    best = pd.concat({panel: best_layers(table) for panel, table in profiles.items()}, names=["target"])
    panel = next(iter(SR_PANELS))
    tests = {test: compare_at_best_layers(stores, saes, best.loc[panel], outcomes, target=SR_PANELS[panel],
                                          selection=selection, a=TRAINED_LATENT, b=control, n_boot=contrast_boot,
                                          seed=seed)
             for test, control in SR_CONTRASTS.items()}
    return LatentContrasts(float("nan"), profiles, best, tests)
