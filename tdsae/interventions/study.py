"""Chapter 8's causal tests of one network in one call, so that every organism of a population gets the same ones.

    chosen = choose_edit_targets(store, saes, targets, selection, n_layers, seed=0)
    study = intervention_study(model, task, played, saes, targets, selection, chosen, seeds=[0], ...)
    study.contrasts[("Q", "scale -20")].loc["value_coupling"]     # edited minus matched control, paired

The TD latent is the best single latent for the reward-controlled TD error at outcome tokens, the Q latents
the best pair for the Q difference at decision tokens, both chosen on the selection half among the layers an
edit can reach later choices from (before the last block). Each is scaled (lesion, -5, the strong factor) and
compared with the same scaling of frequency-matched random latents, in play and in later layers' tracking.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tdsae.interventions.edits import LatentEdit
from tdsae.interventions.experiments import (drop_difference, effects_against, later_layer_tracking, matched_latents,
                                             play_conditions)
from tdsae.latents.profiles import units_at
from tdsae.latents.search import best_pair, best_unit
from tdsae.latents.targets import covariates_of
from tdsae.sae.metrics import latent_frequency
from tdsae.validation import check_count, check_number, check_seed

EDITED = {"TD": ("td_error", "TD errors"), "Q": ("q_diff", "Q-value differences")}  # name -> (target, plural noun)


@dataclass
class EditTargets:
    """The latents an intervention edits and their matched controls."""

    layer: dict  # "TD" / "Q" -> residual layer of the edit
    latents: dict  # "TD" -> [the TD latent]; "Q" -> [the pair's positive, negative latent]
    matched: dict  # the same keys -> frequency-matched random latents, one per edited latent
    frequency: dict  # the same keys -> (mean firing frequency of the latents, of their controls)
    r_report: dict  # the same keys -> |r| on the report half (the TD latent's with the reward controlled)


@dataclass
class InterventionStudy:
    """What editing the chosen latents did to play and to later layers, against matched controls."""

    chosen: EditTargets
    conditions: dict  # condition -> [LatentEdit]
    behaviour: pd.DataFrame  # play_conditions rows (condition, seed, experiment, reward, alpha, beta, value_coupling)
    effects: pd.DataFrame  # every condition against unedited play: condition, measure, effect, low, high
    contrasts: dict  # ("TD" or "Q", "lesion" or "scale <strong>") -> effects of edited against control, by measure
    tracking: pd.DataFrame  # later_layer_tracking rows, with edited ("TD"/"Q"), latents ("target"/"control"), factor
    drops: dict  # "TD" / "Q" -> drop_difference at the strongest tracking factor
    later: dict  # "TD" / "Q" -> layers after the edit whose tracking was read


def choose_edit_targets(store, saes: dict, targets: pd.DataFrame, selection: np.ndarray, n_layers: int,
                        seed: int = 0) -> EditTargets:
    """The TD latent and the Q pair at the editable layers (1 .. n_layers - 1 with an SAE), chosen on the
    selection half, and their frequency-matched controls.

    Args: store: the network's ActivationStore; saes: {layer: LayerSAE}; targets: reference_targets rows.
    """
    seed, n_layers = check_seed(seed), check_count(n_layers, "n_layers")
    editable = [layer for layer in sorted(saes) if 0 < layer < n_layers]
    if not editable:
        raise ValueError(f"no SAE sits at a layer an edit can act from (1 .. {n_layers - 1}); SAEs at {sorted(saes)}")
    outcomes = targets[targets.kind == "outcome"].dropna(subset=["td_error"])
    decisions = targets[targets.kind == "decision"].dropna(subset=["q_diff"])
    td = {layer: best_unit(units_at(store, layer, outcomes.row.to_numpy(), saes[layer].sae),
                           outcomes.td_error.to_numpy(), outcomes.experiment.to_numpy(), selection,
                           covariates_of(outcomes), n_boot=0)
          for layer in editable}
    q = {layer: best_pair(units_at(store, layer, decisions.row.to_numpy(), saes[layer].sae),
                          decisions.q_diff.to_numpy(), decisions.experiment.to_numpy(), selection, n_boot=0)
         for layer in editable}
    layer = {"TD": max(td, key=lambda l: abs(td[l].r_select)), "Q": max(q, key=lambda l: abs(q[l].r_select))}
    latents = {"TD": [td[layer["TD"]].unit], "Q": [q[layer["Q"]].unit, q[layer["Q"]].partner]}
    matched, frequency = {}, {}
    for name in EDITED:
        fires = latent_frequency(saes[layer[name]].sae, np.asarray(store.acts(layer[name]))).numpy()
        matched[name] = matched_latents(fires, latents[name], seed)
        frequency[name] = (float(fires[latents[name]].mean()), float(fires[matched[name]].mean()))
    r_report = {"TD": abs(td[layer["TD"]].r_report), "Q": abs(q[layer["Q"]].r_report)}
    return EditTargets(layer, latents, matched, frequency, r_report)


def edit_conditions(saes: dict, chosen: EditTargets, strong_factor: float) -> dict:
    """Unedited play, the SAE's reconstruction spliced in at the Q layer, and for TD and Q: lesion, scale -5 and
    scale by strong_factor, each of the chosen latents and of their matched controls."""
    strong_factor = check_number(strong_factor, "strong_factor")
    conditions = {"unedited": [],
                  "SAE reconstruction": [LatentEdit(chosen.layer["Q"], saes[chosen.layer["Q"]].sae, [], 1.0,
                                                    keep_error=False)]}
    for name in EDITED:
        sae = saes[chosen.layer[name]].sae
        for label, factor in (("lesion", 0.0), ("scale -5", -5.0), (f"scale {strong_factor:g}", strong_factor)):
            conditions[f"{name}: {label}"] = [LatentEdit(chosen.layer[name], sae, chosen.latents[name], factor)]
            conditions[f"{name} control: {label}"] = [LatentEdit(chosen.layer[name], sae, chosen.matched[name], factor)]
    return conditions


def intervention_study(model, task, played, store, saes: dict, targets: pd.DataFrame, selection: np.ndarray,
                       chosen: EditTargets, *, seeds, n_experiments: int, n_episodes: int, n_random_episodes: int,
                       alpha: float, gamma: float, strong_factor: float = -20.0,
                       tracking_factors=(1.0, 0.0, -5.0, -20.0), seed: int = 0,
                       experiments_per_batch: int | None = None, play_cache=None) -> InterventionStudy:
    """Play every edit_conditions condition on every seed, and read later layers under each tracking factor.

    Args: played: the network's unedited episodes (read again, edited, for later layers' tracking); store:
    their activations; n_experiments: each condition replays the first n_experiments of those played, and
    later layers are read again on the report half of them; seeds: play seeds (the same for every condition,
    so effects pair by experiment);
    alpha, gamma: the reference Q-learner of the value coupling; seed: the bootstraps' seed;
    experiments_per_batch: story play's lockstep batch (play_task); play_cache: an ArtifactStore that keeps
    each condition's play as it finishes, so that a stopped study resumes (play_conditions).
    """
    tracking_factors = [check_number(f, "tracking factor") for f in tracking_factors]
    if 1.0 not in tracking_factors:
        raise ValueError(f"tracking_factors {tracking_factors} must include 1.0, the unedited reading drops start from")
    seed = check_seed(seed)
    if check_count(n_experiments, "n_experiments") > played.trajectory.n_experiments:
        raise ValueError(f"n_experiments={n_experiments!r}: the conditions replay the first experiments of the "
                         f"{played.trajectory.n_experiments} played, so expected 1 .. {played.trajectory.n_experiments}")
    conditions = edit_conditions(saes, chosen, strong_factor)
    behaviour = play_conditions(model, task, conditions, n_experiments, n_episodes, seeds, n_random_episodes, alpha,
                                gamma, experiments_per_batch=experiments_per_batch,
                                play_cache=play_cache)
    effects = effects_against(behaviour, "unedited", seed=seed)
    contrasts = {}
    for name in EDITED:
        for label in ("lesion", f"scale {strong_factor:g}"):
            pair = behaviour[behaviour.condition.isin([f"{name}: {label}", f"{name} control: {label}"])]
            contrasts[(name, label)] = effects_against(pair, f"{name} control: {label}", seed=seed).set_index("measure")
    later = {name: [layer for layer in saes if layer > chosen.layer[name]] for name in EDITED}
    outcomes = targets[targets.kind == "outcome"].dropna(subset=["td_error"])
    decisions = targets[targets.kind == "decision"].dropna(subset=["q_diff"])
    choices = {}
    for layer in later["TD"]:
        choices[("td_error", layer, True)] = best_unit(
            units_at(store, layer, outcomes.row.to_numpy(), saes[layer].sae), outcomes.td_error.to_numpy(),
            outcomes.experiment.to_numpy(), selection, covariates_of(outcomes), n_boot=0)
    for layer in later["Q"]:
        choices[("q_diff", layer, False)] = best_pair(
            units_at(store, layer, decisions.row.to_numpy(), saes[layer].sae), decisions.q_diff.to_numpy(),
            decisions.experiment.to_numpy(), selection, n_boot=0)
    tables, samples = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (target, _) in EDITED.items():
            wanted = {key: best for key, best in choices.items() if key[0] == target}
            if not wanted:
                continue  # the edit sits at the last SAE layer: no later layer to read
            variants = {(name, which, factor): [LatentEdit(chosen.layer[name], saes[chosen.layer[name]].sae, latents,
                                                           factor)]
                        for which, latents in (("target", chosen.latents[name]), ("control", chosen.matched[name]))
                        for factor in tracking_factors}
            table, found = later_layer_tracking(model, played, saes, variants, targets, selection, wanted, tmp,
                                                experiments=range(n_experiments))
            tables.append(table)
            samples.update(found)
    tracking = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(
        columns=["condition", "target", "layer", "partial", "r"])
    tracking[["edited", "latents", "factor"]] = pd.DataFrame(tracking.condition.tolist(), index=tracking.index,
                                                             columns=["edited", "latents", "factor"])
    strongest = min(tracking_factors)
    drops = {name: drop_difference(samples, target, later[name], ((name, "target", 1.0), (name, "target", strongest)),
                                   ((name, "control", 1.0), (name, "control", strongest)), seed=seed)
             if later[name] else {"difference": float("nan"), "low": float("nan"), "high": float("nan")}
             for name, (target, _) in EDITED.items()}
    return InterventionStudy(chosen, conditions, behaviour, effects, contrasts, tracking, drops, later)
