"""Feature spaces of several networks on the same words (chapter 12, after Lan et al.).

    readers = shared_readers(S, "twostep")                 # every organism, a second SAE seed, the untrained net
    found = compare_feature_spaces(readers["organism 0"], readers["organism 1"], layer_a=2, layer_b=2,
                                   selection=split_experiments(S.n_experiments, S.seed))
    found.pairings                                         # share above threshold, SVCCA (both rules), RSA, nulls
    study = universality_study(S, "twostep")               # the whole ladder, a layer grid, the TD/Q pairing

The organisms share a tokenizer, so all of them read the held-out agents' transcripts (AGENTS) at the same
positions, as Lan et al. ran two LLMs on the same tokens. Each organism's SAEs are chapter 7's, trained on its
own play; the ceiling is organism 0 against itself with a second SAE seed (chapter 11 trains it), the floor
organism 0 against its untrained step-0 network. No SAE is trained here that those chapters did not train. A
pretrained preset compares its model with ``universality_partner`` (a model sharing its tokenizer) the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tdsae.latents import PANELS, panel_rows, reference_targets, split_experiments
from tdsae.latents.profiles import units_at
from tdsae.latents.similarity import latent_correlations, linear_cka, pair_latents, rsa, rsa_null, svcca, svcca_null
from tdsae.latents.targets import covariates_of
from tdsae.pipeline.episodes import (AGENTS, agent_trajectories, check_request, harvested_store, model_source,
                                     task_for, untrained_source)
from tdsae.pipeline.organisms import organism_settings, population
from tdsae.pipeline.saes import analysis_saes
from tdsae.presets import PRESETS, check_settings
from tdsae.stats import correlations, residualize
from tdsae.validation import ORGANISM, check_count, check_number, check_seed

# How a's latents find partners in b: Lan et al.'s best partner, Hungarian one-to-one, and one-to-one kept only
# where the partner correlates at least the threshold on the selection half (its null shuffles among those pairs:
# random pairing among latents that did find a partner)
PAIRINGS = ("many-to-one", "one-to-one", "one-to-one, above threshold")
SIMILARITIES = ("svcca_released", "svcca_intended", "rsa")
# the quantities whose latents chapter 12 asks to pair up: chapter 7's panels, read on the shared transcripts
TRACKED = {"TD error": "TD error, reward controlled", "Q difference": "Q difference (decision token)"}


@dataclass
class Reader:
    """One network reading the shared transcripts: its residual stream and the SAEs that decompose it."""

    name: str  # e.g. "organism 1", "organism 0, SAE seed 1", "untrained"
    store: object  # ActivationStore on the held-out agents' transcripts
    saes: dict  # {layer: LayerSAE}


def universality_settings(settings):
    """The settings chapter 12 compares: a pretrained preset's model with its universality_partner where it names
    one; else the organisms, at least tiny's population of them (a pretrained preset's population is its one model,
    and one network has nothing to be compared with)."""
    check_settings(settings)
    if settings.model != ORGANISM and settings.universality_partner:
        return settings
    organisms = organism_settings(settings)
    return dataclasses.replace(organisms, n_organisms=max(organisms.n_organisms, PRESETS["tiny"].n_organisms))


def shared_readers(settings, task_name: str = "twostep", store=None) -> dict[str, Reader]:
    """The networks chapter 12 compares, all reading the held-out agents' transcripts (stories for a pretrained
    model) of ``task_name``, each with its own analysis SAEs (trained on its own play).

    For the organism: every organism of the population ("organism 0", "organism 1", ...). For a pretrained preset:
    the preset's model and settings.universality_partner, a second model sharing its tokenizer. Then the first of
    them again with SAEs from a second seed ("<name>, SAE seed 1") and its untrained network ("untrained"), both
    read like the first (the untrained network's SAEs train on the first network's play).
    """
    check_request(settings, task_name)
    readers = {}
    if settings.model == ORGANISM:
        if settings.n_organisms < 2:
            raise ValueError(f"comparing feature spaces needs two networks, but the population has n_organisms="
                             f"{settings.n_organisms}: use 2 or more organisms (universality_settings does), or a "
                             "pretrained preset with a universality_partner")
        members = population(settings)
        for member in members:
            _, saes = analysis_saes(member, task_name, store=store)
            readers[f"organism {member.organism}"] = Reader(
                f"organism {member.organism}", harvested_store(member, task_name, played_by=AGENTS, store=store), saes)
        first = members[0]
    else:
        partner = settings.universality_partner
        if not partner:
            raise ValueError(f"the preset's model {settings.model!r} has no universality_partner to be compared with: "
                             "set one (a model sharing its tokenizer), or pass tdsae.pipeline.organism_settings("
                             "settings) to compare the preset's organisms")
        _, saes = analysis_saes(settings, task_name, store=store)
        readers[settings.model] = Reader(settings.model, harvested_store(settings, task_name, played_by=AGENTS,
                                                                         store=store), saes)
        _, partner_saes = analysis_saes(settings, task_name, model=partner, played_by=partner, store=store)
        readers[partner] = Reader(partner, harvested_store(settings, task_name, model=partner, played_by=AGENTS,
                                                           store=store), partner_saes)
        first = settings
    first_name = next(iter(readers))
    final = model_source(first, task_name)
    _, reseeded = analysis_saes(first, task_name, model=final, played_by=final, sae_seed=first.seed + 1, store=store)
    readers[f"{first_name}, SAE seed 1"] = Reader(f"{first_name}, SAE seed 1", readers[first_name].store, reseeded)
    untrained = untrained_source(first, store, task_name)
    _, untrained_saes = analysis_saes(first, task_name, model=untrained, played_by=final, store=store)
    readers["untrained"] = Reader("untrained", harvested_store(first, task_name, model=untrained, played_by=AGENTS,
                                                               store=store), untrained_saes)
    return readers


def paired_layers(a: Reader, b: Reader) -> list[tuple[int, int]]:
    """The layers of a and b compared "at the same depth": the i-th SAE layer of each (identical layers for two
    networks of one shape; for two depths, e.g. 16 and 28 layers, each one's evenly spaced analysis layers)."""
    return list(zip(sorted(a.saes), sorted(b.saes)))


@dataclass
class FeatureSpaceComparison:
    """Two readers' latents at one layer each, paired on the selection half and scored on the report half."""

    a: str  # reader names
    b: str
    layer_a: int
    layer_b: int
    cka: float  # linear CKA of the raw residual streams (report half): needs no SAE
    pairings: pd.DataFrame  # one row per PAIRINGS entry: n_pairs, share_above, each similarity (and its null)
    scored: np.ndarray  # [k_a, k_b] latent correlations on the report half (NaN: dead there)
    partners: pd.DataFrame  # the one-to-one pairs: a, b, correlation (selection half), report (report half)

    def pairing_of(self, unit_a: int, unit_b: int) -> dict:
        """How a's latent ``unit_a`` pairs with b's ``unit_b`` (e.g. each network's best Q-value latent).

        Returns: r (their correlation on the report half), percentile (the share of a's one-to-one pairs whose
        report correlation is below r: where r falls in the distribution over all latents), matched (the one-to-one
        matching paired exactly these two), partner_r (the report correlation of a's latent with its own one-to-one
        partner; NaN if it has none).
        """
        r = float(self.scored[unit_a, unit_b]) if unit_a >= 0 and unit_b >= 0 else np.nan
        reports = self.partners.report.dropna().to_numpy()
        own = self.partners[self.partners.a == unit_a]
        return {"r": r, "percentile": float(np.mean(reports < r)) if np.isfinite(r) and len(reports) else np.nan,
                "matched": bool(len(own) and int(own.b.iloc[0]) == unit_b),
                "partner_r": float(own.report.iloc[0]) if len(own) else np.nan}


def compare_feature_spaces(a: Reader, b: Reader, layer_a: int, layer_b: int, selection: np.ndarray,
                           threshold: float = 0.5, n_permutations: int = 1000, seed: int = 0,
                           nulls: bool = True) -> FeatureSpaceComparison:
    """Pair a's latents with b's on the selection half of the experiments and score the pairing on the other half.

    Pairing (latent_correlations on the same rows): each of PAIRINGS. For each: the share of a's live latents whose
    partner correlates at least ``threshold`` on the report half; SVCCA under both rules and RSA of the paired
    decoder rows, each (with ``nulls``) against the shuffled-pairing null (svcca_null, rsa_null). A measure that
    cannot be computed (SVCCA needs more pairs than dimensions, RSA 3 pairs) is NaN. Linear CKA of the raw residual
    streams on the report half needs no SAE. nulls=False scores without nulls (a layer-by-layer grid).
    """
    threshold = check_number(threshold, "threshold", low=-1, high=1)
    n_permutations, seed = check_count(n_permutations, "n_permutations"), check_seed(seed)
    for reader, layer in ((a, layer_a), (b, layer_b)):
        if layer not in reader.saes:
            raise ValueError(f"{reader.name} has no SAE at layer {layer!r}; it has layers {sorted(reader.saes)}")
    if not a.store.index[["experiment", "position", "kind"]].equals(b.store.index[["experiment", "position", "kind"]]):
        raise ValueError(f"{a.name} and {b.name} did not read the same tokens: their stores' indexes differ")
    index = a.store.index
    fit = np.asarray(selection)[index.experiment.to_numpy()]
    rows = index.row.to_numpy()
    latents = [units_at(reader.store, layer, rows, reader.saes[layer].sae) for reader, layer in ((a, layer_a),
                                                                                             (b, layer_b))]
    decoders = [reader.saes[layer].sae.W_dec.detach().float().cpu().numpy() for reader, layer in ((a, layer_a),
                                                                                               (b, layer_b))]
    fitted = latent_correlations(latents[0][fit], latents[1][fit])
    scored = latent_correlations(latents[0][~fit], latents[1][~fit])
    live = max(int(np.isfinite(fitted).any(1).sum()), 1)  # a's latents that fire on the selection half
    table, partners = [], None
    for how in PAIRINGS:
        pairs = pair_latents(fitted, how.split(",")[0], threshold if how.endswith("threshold") else None)
        report = scored[pairs.a.to_numpy(), pairs.b.to_numpy()]
        if how == "one-to-one":
            partners = pairs.assign(report=report)
        row = {"pairing": how, "n_pairs": len(pairs),
               "share_above": float(np.sum(np.nan_to_num(report, nan=-1.0) >= threshold) / live)}
        row.update(_similarities(decoders[0][pairs.a.to_numpy()], decoders[1][pairs.b.to_numpy()],
                                 n_permutations if nulls else 0, seed))
        table.append(row)
    cka = linear_cka(a.store.acts(layer_a, rows[~fit]), b.store.acts(layer_b, rows[~fit]))
    return FeatureSpaceComparison(a.name, b.name, layer_a, layer_b, cka, pd.DataFrame(table).set_index("pairing"),
                                  scored, partners)


def _similarities(paired_a: np.ndarray, paired_b: np.ndarray, n_permutations: int, seed: int) -> dict:
    """SVCCA (both rules, with k) and RSA of paired decoder rows; with n_permutations > 0 each with its shuffled
    null's 95th percentile and p-value. NaN where there are too few pairs for the measure."""
    row = {}
    for rule in ("released", "intended"):
        name = f"svcca_{rule}"
        if len(paired_a) <= max(paired_a.shape[1], paired_b.shape[1]):
            row.update({name: np.nan, f"{name}_k": np.nan, f"{name}_null_high": np.nan, f"{name}_p": np.nan})
            continue
        if n_permutations:
            null = svcca_null(paired_a, paired_b, rule, n_permutations, seed)
            row.update({name: null["score"], f"{name}_k": null["k_a"], f"{name}_null_high": null["null_high"],
                        f"{name}_p": null["p"]})
        else:
            found = svcca(paired_a, paired_b, rule)
            row.update({name: found["score"], f"{name}_k": found["k_a"]})
    if len(paired_a) < 3:
        row.update({"rsa": np.nan, "rsa_null_high": np.nan, "rsa_p": np.nan})
    elif n_permutations:
        null = rsa_null(paired_a, paired_b, n_permutations, seed)
        row.update({"rsa": null["score"], "rsa_null_high": null["null_high"], "rsa_p": null["p"]})
    else:
        row["rsa"] = rsa(paired_a, paired_b)
    return row


def tracking_latents(reader: Reader, targets: pd.DataFrame, selection: np.ndarray) -> pd.DataFrame:
    """Each layer's latent that rises most with each TRACKED quantity, chosen on the selection half.

    A ReLU latent fires on one side of zero only, so the latent is chosen by signed correlation (the one that
    grows with the TD error, or with Q(first action) - Q(second)), reward-controlled where chapter 7's panel is;
    two networks' choices are then comparable. Args: targets: reference_targets on the reader's store index.
    Returns: rows of quantity, layer, unit (-1 if every latent is dead), r_select, r_report (the same latent on
    the report half).
    """
    rows = []
    for quantity, panel in TRACKED.items():
        _, column, partial = PANELS[panel]
        chosen = panel_rows(targets, panel)
        halves = []
        for part in (True, False):
            mask = np.asarray(selection)[chosen.experiment.to_numpy()] == part
            covariates = covariates_of(chosen[mask]) if partial else None
            halves.append((chosen.row.to_numpy()[mask], covariates, residualize(chosen[column].to_numpy(float)[mask],
                                                                                covariates)))
        for layer, entry in sorted(reader.saes.items()):
            r = [correlations(residualize(units_at(reader.store, layer, rows_of, entry.sae), covariates), target)
                 for rows_of, covariates, target in halves]
            unit = int(np.nanargmax(r[0])) if np.isfinite(r[0]).any() else -1
            rows.append({"quantity": quantity, "layer": layer, "unit": unit,
                         "r_select": float(r[0][unit]) if unit >= 0 else np.nan,
                         "r_report": float(r[1][unit]) if unit >= 0 else np.nan})
    return pd.DataFrame(rows)


@dataclass
class UniversalityStudy:
    """Chapter 12's measurements: the ladder of comparisons, one layer grid, and the TD and Q latents' pairing."""

    first: str  # the network the ceiling and floor are measured on ("organism 0", or the preset's model)
    rungs: dict  # rung -> [(reader a, reader b)]: "ceiling", "test", "floor"
    diagonal: pd.DataFrame  # rung, a, b, layer (a's), layer_b, pairing, n_pairs, share_above, each similarity (+ null), cka
    grid: pd.DataFrame  # layer_a, layer_b, share_above (one-to-one), svcca_intended, rsa, cka: the first test pair
    tracked: pd.DataFrame  # reader, quantity, layer, unit, r_select, r_report
    td_q: pd.DataFrame  # a, b, quantity, layer (a's), r, percentile, matched, partner_r: the test pairs' tracked latents
    partners: pd.DataFrame  # a, b, layer, report: every one-to-one pair of the test rung, scored on the report half
    identity: pd.DataFrame  # the first reader against itself at each layer: pairings' scores (no nulls)
    threshold: float
    n_permutations: int


def universality_study(settings, task_name: str = "twostep", threshold: float = 0.5, n_permutations: int = 1000,
                       store=None) -> UniversalityStudy:
    """The ladder of feature-space comparisons on the held-out agents' transcripts, at every depth.

    ceiling: the first network (organism 0, or the preset's model) against itself with a second SAE seed; test:
    every two organisms of the population, or the preset's model against its universality_partner; floor: the first
    network against its untrained one. Each at the same depth of both (paired_layers, with nulls), the first test
    pair also at every layer pair (without nulls), and the first network against itself with the same SAEs (the
    identity every measure must score 1 on). For every test pair, how each network's TD-error and Q-value latents
    pair up.
    """
    threshold = check_number(threshold, "threshold", low=-1, high=1)
    n_permutations = check_count(n_permutations, "n_permutations")
    readers = shared_readers(settings, task_name, store)
    first = next(iter(readers))
    networks = [name for name in readers if name not in (f"{first}, SAE seed 1", "untrained")]
    rungs = {"ceiling": [(first, f"{first}, SAE seed 1")], "test": list(combinations(networks, 2)),
             "floor": [(first, "untrained")]}
    selection = split_experiments(settings.n_experiments, settings.seed)
    traj, alpha, _ = agent_trajectories(settings, task_name)
    targets = reference_targets(task_for(settings, task_name), traj, readers[first].store.index, alpha,
                                settings.gamma)
    tracked = pd.concat([tracking_latents(readers[name], targets, selection).assign(reader=name)
                         for name in networks], ignore_index=True)
    diagonal, td_q, identity, partners = [], [], [], []
    jobs = [(rung, pair, layers) for rung, pairs in rungs.items() for pair in pairs
            for layers in paired_layers(readers[pair[0]], readers[pair[1]])]
    for rung, (name_a, name_b), (layer_a, layer_b) in tqdm(jobs, desc="feature spaces"):
        found = compare_feature_spaces(readers[name_a], readers[name_b], layer_a, layer_b, selection, threshold,
                                       n_permutations, settings.seed)
        diagonal.append(found.pairings.reset_index().assign(rung=rung, a=name_a, b=name_b, layer=layer_a,
                                                            layer_b=layer_b, cka=found.cka))
        if rung == "test":
            partners.append(found.partners.assign(a=name_a, b=name_b, layer=layer_a)[["a", "b", "layer", "report"]])
            for quantity in TRACKED:
                units = [tracked[(tracked.reader == name) & (tracked.quantity == quantity)
                                 & (tracked.layer == layer)].unit.iloc[0]
                         for name, layer in ((name_a, layer_a), (name_b, layer_b))]
                td_q.append({"a": name_a, "b": name_b, "quantity": quantity, "layer": layer_a, "layer_b": layer_b,
                             **found.pairing_of(*units)})
    for layer in sorted(readers[first].saes):
        same = compare_feature_spaces(readers[first], readers[first], layer, layer, selection, threshold,
                                      n_permutations, settings.seed, nulls=False)  # scores only: all must be 1
        identity.append(same.pairings.reset_index().assign(layer=layer, cka=same.cka))
    grid_a, grid_b = rungs["test"][0]
    grid = []
    for layer_a in sorted(readers[grid_a].saes):
        for layer_b in sorted(readers[grid_b].saes):
            found = compare_feature_spaces(readers[grid_a], readers[grid_b], layer_a, layer_b, selection, threshold,
                                           n_permutations, settings.seed, nulls=False)
            one = found.pairings.loc["one-to-one"]
            grid.append({"layer_a": layer_a, "layer_b": layer_b, "share_above": one.share_above,
                         "svcca_intended": one.svcca_intended, "rsa": one.rsa, "cka": found.cka})
    return UniversalityStudy(first, rungs, pd.concat(diagonal, ignore_index=True), pd.DataFrame(grid),
                             tracked[["reader", "quantity", "layer", "unit", "r_select", "r_report"]],
                             pd.DataFrame(td_q), pd.concat(partners, ignore_index=True),
                             pd.concat(identity, ignore_index=True), threshold, n_permutations)
