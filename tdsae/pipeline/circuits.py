"""Chapter 13's study: which attention heads compute the organism's choice, found with discrete SAE codes (O'Neill
& Bui) and scored against ablations made here.

    study = circuit_study(S)          # every organism of the population, on the held-out agents' minimal pairs
    study.rankings                    # ROC AUC / average precision of every method against every ground truth

For each organism: the positive and negative prompts (tdsae.circuits.prompts) read by the trained network and by
its untrained one; every head ablated alone at the decision token, by zero, mean and resample (the ground truth);
the SAE-code scores (the paper's mean-over-positions head vector, and the decision token's) with their edge votes;
the baselines (|mean difference|, attribution patching, random directions, shuffled labels, the untrained network);
and the wall-clock time of each. Prompts that train the SAE are never scored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tdsae.activations.heads import head_results
from tdsae.circuits.codes import (PAPER_LATENTS, discrete_codes, edge_scores, edge_votes, mean_difference_scores,
                                  node_scores, random_codes, ranking_scores, train_code_sae)
from tdsae.circuits.ioi import ioi_pairs
from tdsae.circuits.prompts import PromptPairs, minimal_pairs, stray_differences
from tdsae.interventions.heads import (ABLATIONS, ablate_heads, ablation_truths, attribution_scores, check_fraction,
                                      head_inputs)
from tdsae.models import load_model, torch_module
from tdsae.organism.corpus import seed_for
from tdsae.pipeline.episodes import agent_trajectories, check_request, task_for, untrained_source
from tdsae.pipeline.organisms import load_preset_model, organism_settings, population
from tdsae.presets import check_settings
from tdsae.validation import ORGANISM, check_count, check_number

VARIANTS = ("mean", "decision")  # the paper's head vector (mean over positions) and the decision token's
FRACTIONS = (0.5, 0.2, 0.05)  # default cut-offs: in the circuit when the effect reaches this share of the largest
MEASURES = ("logp_drop", "kl")
CIRCUIT_STREAM = 14  # spawn key of the SAE-training prompts, the SAE seeds and the label shuffles


@dataclass
class CircuitStudy:
    """Everything chapter 13 reports, one row per organism (and head) where it applies."""

    pairs: PromptPairs  # every pair (the organisms' MinimalPairs are the same for all: they share a tokenizer)
    sae_rows: np.ndarray  # bool [pairs]: the pairs whose two prompts train the SAE (never scored)
    behaviour: pd.DataFrame  # organism, network, logp_positive, logp_negative, gap, confident_positive/negative
    effects: pd.DataFrame  # organism, ablation, layer, head, logp_drop, kl (on the scored pairs)
    scores: pd.DataFrame  # organism, method, variant, layer, head, score
    rankings: pd.DataFrame  # organism ("pooled" or an index), method, variant, ablation, measure, fraction, AUC...
    runtimes: pd.DataFrame  # organism, method, seconds
    n_shuffles: int
    identity_drop: float  # the largest |logp_drop| of resampling organism 0's heads from the prompts themselves
    stray_differences: int | None  # places an organism's pairs differ other than in a payout word's reward (None: IOI)

    def circuit_sizes(self, ablation: str = "resample", measure: str = "logp_drop", fraction: float = 0.2) -> list:
        """[organisms] how many heads each organism's ground-truth circuit holds at one cut-off."""
        if ablation not in set(self.effects.ablation):
            raise ValueError(f"no {ablation!r} ablation in this study; it has {sorted(set(self.effects.ablation))}")
        rows = self.effects[self.effects.ablation == ablation].sort_values(["organism", "layer", "head"])
        return [int(ablation_truths(group, measure, (fraction,))[float(fraction)].sum())
                for _, group in rows.groupby("organism")]

    def auc_per_organism(self, method: str, variant: str = "mean", ablation: str = "resample",
                         measure: str = "logp_drop", fraction: float = 0.2) -> np.ndarray:
        """[organisms] each organism's ROC AUC for one method against one ground truth (NaN where its circuit
        holds no head or every head)."""
        rows = self.rankings[(self.rankings.method == method) & (self.rankings.variant == variant)
                             & (self.rankings.ablation == ablation) & (self.rankings.measure == measure)
                             & np.isclose(self.rankings.fraction, fraction) & (self.rankings.organism != "pooled")]
        if rows.empty:
            raise ValueError(f"no ranking for method {method!r}, variant {variant!r}, ablation {ablation!r}, measure "
                             f"{measure!r} at fraction {fraction}; methods: {sorted(set(self.rankings.method))}, "
                             f"variants: {VARIANTS}, ablations: {ABLATIONS}, measures: {MEASURES}, "
                             f"fractions: {sorted(set(self.rankings.fraction))}")
        return rows.sort_values("organism").roc_auc.to_numpy(float)


def _target_logp(model, ids, mask, positions, targets) -> np.ndarray:
    """[rows] log-probability of each row's target at its decision token."""
    module = torch_module(model)
    device = next(module.parameters()).device
    rows = torch.arange(len(positions))
    with torch.no_grad():
        logits = module(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[rows, positions.to(device)]
    return logits.float().log_softmax(-1)[rows, targets.to(device)].cpu().numpy()


def _behaviour(model, pairs: PromptPairs) -> dict:
    positive = _target_logp(model, pairs.positive, pairs.attention_mask, pairs.positions, pairs.targets)
    negative = _target_logp(model, pairs.negative, pairs.attention_mask, pairs.positions, pairs.targets)
    return {"logp_positive": positive.mean(), "logp_negative": negative.mean(), "gap": (positive - negative).mean(),
            "confident_positive": (np.exp(positive) > 0.5).mean(),
            "confident_negative": (np.exp(negative) > 0.5).mean()}


def _head_vectors(model, pairs: PromptPairs, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """([pairs, heads, d] positive, negative) head results, heads of every layer in one axis."""
    positions = None if variant == "mean" else pairs.positions
    return tuple(head_results(model, ids, pairs.attention_mask, positions).flatten(1, 2).numpy()
                 for ids in (pairs.positive, pairs.negative))


def _code_scores(vectors, scored, sae_rows, seed: int) -> dict[str, np.ndarray]:
    """The paper's method on one network's head vectors: the SAE on the SAE pairs' prompts, codes on the scored."""
    positive, negative = vectors
    sae = train_code_sae(np.concatenate([positive[sae_rows], negative[sae_rows]]), seed=seed)
    codes = discrete_codes(sae, np.concatenate([positive[scored], negative[scored]]))
    labels = np.repeat([True, False], scored.sum())
    return {"codes": codes, "labels": labels, "nodes": node_scores(codes, labels),
            "edges": edge_votes(edge_scores(codes, labels))}


def circuit_study(settings, confidence: float = 0.9, prompts_per_agent: int = 1, n_sae_prompts: int = 10,
                  n_shuffles: int = 20, fractions=FRACTIONS, store=None) -> CircuitStudy:
    """The study on every organism of the preset's population (organism_settings: at a pretrained preset, its
    organisms), reading minimal pairs from the held-out Q-learning agents' Two-Step transcripts.

    Args: confidence: the least choice probability of an agent's decision for a positive prompt; prompts_per_agent:
    decisions drawn per agent; n_sae_prompts: prompts the SAE trains on (the paper: 10), half positive and half
    negative, from pairs that are then never scored; n_shuffles: label shuffles averaged in the shuffled-label control;
    fractions: the cut-offs of the ground truths (a head is in the circuit when its effect reaches this share of its
    organism's largest), each in (0, 1].
    """
    settings = organism_settings(settings)
    check_request(settings, "twostep")
    confidence = check_number(confidence, "confidence", low=0.5, high=1)
    prompts_per_agent, n_shuffles = check_count(prompts_per_agent, "prompts_per_agent"), check_count(n_shuffles,
                                                                                                     "n_shuffles")
    n_sae_prompts = check_count(n_sae_prompts, "n_sae_prompts")
    fractions = tuple(dict.fromkeys(check_fraction(f) for f in np.atleast_1d(fractions).tolist()))
    if not fractions:
        raise ValueError("fractions must hold at least one cut-off in (0, 1]")
    if n_sae_prompts % 2:
        raise ValueError(f"n_sae_prompts must be even (half positive, half negative); got {n_sae_prompts}")
    members = population(settings)
    task = task_for(settings, "twostep")
    traj, alpha, beta = agent_trajectories(settings, "twostep")
    first = load_preset_model(members[0], store)
    pairs = minimal_pairs(task, traj, alpha, beta, first.tokenizer, settings.gamma, confidence, prompts_per_agent,
                          settings.n_random_episodes, settings.seed)
    if len(pairs) < n_sae_prompts // 2 + 4:
        raise ValueError(f"only {len(pairs)} minimal pairs: too few to train the SAE on {n_sae_prompts} prompts and "
                         "score the rest; lower confidence or raise prompts_per_agent")
    rng = np.random.default_rng(seed_for(settings.seed, CIRCUIT_STREAM))
    sae_rows = np.isin(np.arange(len(pairs)), rng.choice(len(pairs), n_sae_prompts // 2, replace=False))
    found = []
    for index, member in enumerate(tqdm(members, desc="organisms")):
        model = first if index == 0 else load_preset_model(member, store)
        untrained = load_model(untrained_source(member, store), device=member.device)
        found.append(_network_study(model, untrained, pairs, sae_rows, index, settings.seed, n_shuffles, ABLATIONS,
                                    identity=index == 0))
    return _assemble(pairs, sae_rows, found, fractions, n_shuffles, first.tokenizer)


def ioi_study(settings, n_pairs: int = 60, n_sae_prompts: int = 10, n_shuffles: int = 20, fractions=FRACTIONS,
              ablations=("resample",), store=None) -> CircuitStudy:
    """O'Neill & Bui's IOI task on the preset's pretrained language model (smol: SmolLM2-135M, 30 layers of 9 heads).

    Positive prompts are IOI sentences, negatives their ABC corruptions (tdsae.circuits.ioi); no head list is
    published for these models, so the ground truth is this model's own per-head ablation at the last token, scored
    by the drop in the indirect object's log-probability. The untrained control is the model's re-initialised twin.
    Args as circuit_study; n_pairs: IOI prompts (the paper: 250); ablations: which of zero, mean, resample to sweep
    (each costs one forward pass per head). Every ablation sweeps all heads: at SmolLM2 about 270 forward passes.
    """
    check_settings(settings)
    if settings.model == ORGANISM:
        raise ValueError(f"the IOI study needs a pretrained language model; preset {settings.name!r} studies the "
                         "organism (use smol, small or full)")
    n_pairs, n_sae_prompts = check_count(n_pairs, "n_pairs"), check_count(n_sae_prompts, "n_sae_prompts")
    n_shuffles = check_count(n_shuffles, "n_shuffles")
    fractions = tuple(dict.fromkeys(check_fraction(f) for f in np.atleast_1d(fractions).tolist()))
    ablations = tuple(ablations)
    unknown = [a for a in ablations if a not in ABLATIONS]
    if unknown or not ablations or not fractions or n_sae_prompts % 2 or n_pairs < n_sae_prompts // 2 + 4:
        raise ValueError(f"bad IOI study settings: ablations {ablations!r} (choose from {ABLATIONS}), fractions "
                         f"{fractions!r} (each in (0, 1]), n_sae_prompts {n_sae_prompts} (even), n_pairs {n_pairs} "
                         f"(at least n_sae_prompts / 2 + 4)")
    model = load_preset_model(settings, store)
    untrained = load_model(untrained_source(settings, store), device=settings.device)
    pairs = ioi_pairs(model.tokenizer, n_pairs, settings.seed)
    rng = np.random.default_rng(seed_for(settings.seed, CIRCUIT_STREAM))
    sae_rows = np.isin(np.arange(len(pairs)), rng.choice(len(pairs), n_sae_prompts // 2, replace=False))
    found = [_network_study(model, untrained, pairs, sae_rows, 0, settings.seed, n_shuffles, ablations,
                            identity=False)]
    return _assemble(pairs, sae_rows, found, fractions, n_shuffles)


def _network_study(model, untrained, pairs, sae_rows: np.ndarray, index: int, seed: int, n_shuffles: int,
                   ablations, identity: bool = True) -> dict:
    """One network's part of a study: behaviour, the ablation truths, every method's head scores, runtimes."""
    scored = ~sae_rows
    test = pairs.rows(scored)
    behaviour, effects, scores, runtimes = [], [], [], []
    heads = torch_module(model).config.num_attention_heads
    for network, reader in (("trained", model), ("untrained", untrained)):
        behaviour.append({"organism": index, "network": network, **_behaviour(reader, test)})

    def record(method: str, variant: str, values, seconds: float | None = None) -> None:
        values = np.asarray(values, float)
        scores.append(pd.DataFrame({"organism": index, "method": method, "variant": variant,
                                    "layer": np.arange(len(values)) // heads,
                                    "head": np.arange(len(values)) % heads, "score": values}))
        if seconds is not None:
            runtimes.append({"organism": index, "method": method, "variant": variant, "seconds": seconds})

    start = time.perf_counter()
    counterparts = head_inputs(model, test.negative, test.attention_mask, test.positions)
    own = head_inputs(model, test.positive, test.attention_mask, test.positions)
    references = {"resample": counterparts, "zero": None,
                  "mean": {layer: torch.cat([z, counterparts[layer]]) for layer, z in own.items()}}
    setup = time.perf_counter() - start
    for ablation in ablations:
        start = time.perf_counter()
        effect = ablate_heads(model, test.positive, test.attention_mask, test.positions, test.targets, ablation,
                              references[ablation])
        runtimes.append({"organism": index, "method": f"{ablation} ablation of every head", "variant": "decision",
                         "seconds": time.perf_counter() - start + (setup if ablation != "zero" else 0.0)})
        effects.append(effect.assign(organism=index, ablation=ablation))
    identity_drop = np.nan
    if identity:  # a head resampled from its own prompt is no ablation: every effect must vanish
        same = ablate_heads(model, test.positive, test.attention_mask, test.positions, test.targets, "resample", own)
        identity_drop = float(same.logp_drop.abs().max())
    start = time.perf_counter()
    attribution = attribution_scores(model, test.positive, test.attention_mask, test.positions, test.targets,
                                     counterparts)
    record("attribution patching", "decision", attribution.logp_drop_estimate,
           time.perf_counter() - start + setup / 2)  # the counterparts' forward, not the positives'
    sae_seed = int(seed_for(seed, CIRCUIT_STREAM, index).generate_state(1)[0])
    for variant in VARIANTS:
        start = time.perf_counter()
        vectors = _head_vectors(model, pairs, variant)
        codes = _code_scores(vectors, scored, sae_rows, sae_seed)
        record("SAE codes", variant, codes["nodes"], time.perf_counter() - start)
        record("SAE codes, edge votes", variant, codes["edges"])
        record("distinct codes", variant, [len(np.unique(column)) for column in codes["codes"].T])  # no labels
        start = time.perf_counter()
        test_vectors = np.concatenate([vectors[0][scored], vectors[1][scored]])
        record("|mean difference|", variant, mean_difference_scores(test_vectors, codes["labels"]),
               time.perf_counter() - start)
        record("random directions", variant, node_scores(random_codes(test_vectors, PAPER_LATENTS, sae_seed),
                                                         codes["labels"]))
        shuffles = np.random.default_rng(seed_for(seed, CIRCUIT_STREAM, index, 1))
        record("shuffled labels", variant, np.mean(
            [node_scores(codes["codes"], shuffles.permutation(codes["labels"])) for _ in range(n_shuffles)], 0))
        blank = _code_scores(_head_vectors(untrained, pairs, variant), scored, sae_rows, sae_seed)
        record("untrained network", variant, blank["nodes"])
    return {"behaviour": behaviour, "effects": effects, "scores": scores, "runtimes": runtimes,
            "identity_drop": identity_drop}


def _assemble(pairs, sae_rows, found: list[dict], fractions: tuple, n_shuffles: int,
              tokenizer=None) -> CircuitStudy:
    """One CircuitStudy from every network's part."""
    effects = pd.concat([e for part in found for e in part["effects"]], ignore_index=True)
    effects = effects[["organism", "ablation", "layer", "head", "logp_drop", "kl"]]
    scores = pd.concat([frame for part in found for frame in part["scores"]], ignore_index=True)
    behaviour = pd.DataFrame([row for part in found for row in part["behaviour"]])
    runtimes = pd.DataFrame([row for part in found for row in part["runtimes"]])
    return CircuitStudy(pairs, sae_rows, behaviour, effects, scores, _rankings(effects, scores, fractions), runtimes,
                        n_shuffles, found[0]["identity_drop"],
                        None if tokenizer is None else stray_differences(pairs, tokenizer))


def _rankings(effects: pd.DataFrame, scores: pd.DataFrame, fractions: tuple) -> pd.DataFrame:
    """Every method against every ground truth: per organism, and pooled within organisms."""
    rows = []
    methods = scores[["method", "variant"]].drop_duplicates().itertuples(index=False)
    for method, variant in methods:
        mine = scores[(scores.method == method) & (scores.variant == variant)]
        mine = mine.sort_values(["organism", "layer", "head"])
        for ablation in [a for a in ABLATIONS if a in set(effects.ablation)]:
            truth = effects[effects.ablation == ablation].sort_values(["organism", "layer", "head"])
            for measure in MEASURES:
                circuits = {organism: ablation_truths(group, measure, fractions)
                            for organism, group in truth.groupby("organism")}
                for fraction in fractions:
                    in_circuit = np.concatenate([circuits[o][fraction] for o in sorted(circuits)])
                    organisms = truth.organism.to_numpy()
                    for who in ["pooled", *sorted(circuits)]:
                        keep = np.ones(len(organisms), bool) if who == "pooled" else organisms == who
                        try:
                            ranked = ranking_scores(mine.score.to_numpy()[keep], in_circuit[keep], organisms[keep])
                        except ValueError:  # no head, or every head, in this organism's circuit
                            ranked = {"roc_auc": np.nan, "average_precision": np.nan, "n_heads": int(keep.sum()),
                                      "n_in_circuit": int(in_circuit[keep].sum())}
                        rows.append({"organism": who, "method": method, "variant": variant, "ablation": ablation,
                                     "measure": measure, "fraction": fraction, **ranked})
    return pd.DataFrame(rows)


def ioi_summary(settings, study: CircuitStudy | None, fraction: float = 0.2) -> str:
    """Chapter 13's paragraph on the IOI study: what it found where it ran (a pretrained preset), and where it did not
    (the organism presets), what a reader runs and what it costs."""
    if study is None:
        return (f"This run studies organisms (preset {settings.name!r}), so the IOI study did not run. It needs a "
                "pretrained model: run this chapter with preset = \"smol\" (SmolLM2-135M-Instruct, offline, 30 layers "
                "of 9 heads; make book PRESET=smol runs every chapter). Its resample sweep is 270 forward passes of "
                "the scored prompts, one per head, the largest cost of the study on a CPU.")
    behaviour = study.behaviour.set_index("network")
    positive, negative = behaviour.logp_positive, behaviour.logp_negative
    auc = study.rankings[(study.rankings.organism == "pooled") & (study.rankings.ablation == "resample")
                         & (study.rankings.measure == "logp_drop")]
    auc = auc[np.isclose(auc.fraction, fraction)].set_index(["method", "variant"]).roc_auc
    if auc.empty:
        raise ValueError(f"the IOI study has no ground truth at fraction {fraction}; it has "
                         f"{sorted(set(study.rankings.fraction))}")
    seconds = study.runtimes.set_index("method").seconds
    n_heads = len(study.scores[(study.scores.method == "SAE codes") & (study.scores.variant == "mean")])
    return (f"{settings.model} read {int((~study.sae_rows).sum())} scored IOI prompts. Its log-probability of the "
            f"indirect object is {positive['trained']:.2f} on the positive prompts and {negative['trained']:.2f} on "
            f"their ABC corruptions (its untrained twin: {positive['untrained']:.2f} and {negative['untrained']:.2f}). "
            f"Against its own resample-ablation circuit (every head whose effect reaches {fraction:.0%} of the "
            f"largest), over its {n_heads} heads, the SAE codes' node score reaches a ROC AUC of "
            f"{auc['SAE codes', 'mean']:.2f} with the paper's head vector and {auc['SAE codes', 'decision']:.2f} with "
            f"the last token's; its edge votes {auc['SAE codes, edge votes', 'mean']:.2f}; |mean difference| "
            f"{auc['|mean difference|', 'mean']:.2f}; random directions {auc['random directions', 'mean']:.2f}; "
            f"shuffled labels {auc['shuffled labels', 'mean']:.2f}; the untrained twin "
            f"{auc['untrained network', 'mean']:.2f}; attribution patching "
            f"{auc['attribution patching', 'decision']:.2f}. The resample sweep took "
            f"{seconds['resample ablation of every head']:.0f} s on this machine; the SAE-code method, head vectors "
            f"included, {seconds[seconds.index == 'SAE codes'].mean():.0f} s.")
