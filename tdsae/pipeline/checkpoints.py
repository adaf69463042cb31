"""An organism's training checkpoints, harvested and decomposed as the finished organism is (chapter 11).

    sources = checkpoint_sources(S)                        # {step: folder}: 0 (untrained) ... the final step
    store = checkpoint_store(S, "twostep", 100)            # step 100 reading the finished organism's own play
    l1, saes = checkpoint_saes(S, "twostep", 100, sae_seed=1)
    study = checkpoint_study(S, "twostep")                 # chapter 11's measurements of one organism

Every checkpoint reads the same transcripts, those the finished organism played, as the untrained control
of chapter 7 does. The final checkpoint *is* the finished organism (chapters 5 to 7's harvest and SAEs are
reused) and step 0 its untrained control. The SAEs of every checkpoint take the L1 coefficient chapter 6
chose for the finished organism: one SAE recipe across training, so that a change is the network's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tdsae.latents import (CONTRASTS, PANELS, compare_best, panel_rows, reference_targets, shuffled_target,
                           split_experiments, td_q_contrasts, unit_profile, units_at)
from tdsae.latents.concepts import LEVELS, context_designs, explained_shares, level_shares
from tdsae.latents.matching import cosine_matrix, match_one_to_one, trace_back
from tdsae.models import load_model
from tdsae.organism import compare_choices, in_context_score, list_checkpoints, r_difference
from tdsae.pipeline.episodes import check_request, harvested_store, model_source, played_episodes, task_for
from tdsae.pipeline.organisms import configs_from_settings, population
from tdsae.pipeline.saes import analysis_saes
from tdsae.play.result import played_token_ids
from tdsae.stats import emergence_step
from tdsae.validation import ORGANISM, check_count, check_int, check_seed

# A TD error is about r - Q: with the reward and Q(s, a) both regressed out, what is left is the discounted value of
# the next state, which neither the token nor the value read at the decision explains.
Q_CONTROLLED = "TD error, reward and Q controlled"
Q_CONTROLS = ("q_taken",)
SEED_PANELS = ("TD error, reward controlled", Q_CONTROLLED, "Q difference (decision token)")  # read with every seed
# latent -> the test whose gain over step 0 says it has appeared (td_q_contrasts', and the Q-controlled TD test)
EMERGENCE_TESTS = {"Q-value latent": "q_latent_vs_untrained", "Q-value latent pair": "q_pair_vs_untrained",
                   "TD-error latent": "td_partial_latent_vs_untrained",
                   "TD-error latent, Q controlled": "td_q_partial_latent_vs_untrained"}
TEST_PANELS = {**{test: panel for test, (panel, _, _) in CONTRASTS.items()},
               "td_q_partial_latent_vs_untrained": Q_CONTROLLED}


def checkpoint_sources(settings, task_name: str | None = None) -> dict[int, str]:
    """{step: loadable folder} of the training checkpoints of the organism that reads ``task_name``
    (model_source: the walker's for "graph"), step 0 first; the final step is the organism's own folder."""
    check_request(settings, task_name)
    if settings.model != ORGANISM:
        raise ValueError(f"only an organism has training checkpoints, and these settings study {settings.model!r}: "
                         "pass tdsae.pipeline.organism_settings(settings) to study the preset's organisms")
    final = model_source(settings, task_name)
    steps = list_checkpoints(final)
    last = max(steps)
    return {step: final if step == last else str(path) for step, path in sorted(steps.items())}


def _source_of(settings, task_name: str, step) -> tuple[str, str]:
    """(the checkpoint's folder, the finished organism's) for a step that exists; ValueError naming the steps."""
    step = check_int(step, "step", 0)
    sources = checkpoint_sources(settings, task_name)
    if step not in sources:
        raise ValueError(f"the organism has no checkpoint at step {step}; it has steps {list(sources)}")
    return sources[step], sources[max(sources)]


def checkpoint_store(settings, task_name: str, step: int, store=None):
    """The residual stream of the checkpoint at ``step``, reading the finished organism's own play (cached)."""
    source, final = _source_of(settings, task_name, step)
    return harvested_store(settings, task_name, model=source, played_by=final, store=store)


def checkpoint_saes(settings, task_name: str, step: int, sae_seed: int | None = None,
                    store=None) -> tuple[float, dict]:
    """The analysis SAEs (chapter 6's L1 coefficient) of the checkpoint at ``step``: (l1, {layer: LayerSAE})."""
    if sae_seed is not None:
        check_seed(sae_seed, "sae_seed")
    source, final = _source_of(settings, task_name, step)
    return analysis_saes(settings, task_name, model=source, played_by=final, sae_seed=sae_seed, store=store)


@dataclass
class CheckpointStudy:
    """Chapter 11's measurements of one organism, checkpoint by checkpoint (step 0 is the untrained network)."""

    organism: int  # which organism of the population
    steps: list  # the checkpoint steps, ascending
    sae_metrics: pd.DataFrame  # step, sae_seed, layer, explained_variance, l0, frac_alive
    strengths: pd.DataFrame  # step, sae_seed, panel, layer, unit, r_report: best latent per layer (report half)
    tests: pd.DataFrame  # step, test, difference, low, high, r_a, r_b: td_q_contrasts against step 0 (steps > 0)
    best: pd.DataFrame  # step, panel, layer, unit, r_report: the best latent's layer chosen on the selection half
    behaviour: pd.DataFrame  # step, r, r_gain, r_low, r_high (r minus step 0's, bootstrap over agents), icl, icl_low, icl_high
    concepts: pd.DataFrame  # step, layer, latent, active, r2_surface, r2_concept, gain, level (latents 0..n_sampled-1)
    nulls: pd.DataFrame  # step, layer, r_select, r_report, n_report: the best latent for row-shuffled TD errors
    decoders: dict  # {layer: {step: W_dec [d_sae, d_model]}} of the first SAE seed
    final_decoders: dict  # {sae_seed: {layer: W_dec}} of every SAE seed at the final step (the seed-to-seed ceiling)

    def latent_gains(self) -> pd.DataFrame:
        """Per step, the trained checkpoint's best latent minus step 0's in report-half |r| with its paired
        bootstrap interval, for each test of EMERGENCE_TESTS (0 at step 0 by definition): step, then per test
        <name>, <name>_low, <name>_high."""
        out = pd.DataFrame({"step": self.steps})
        for name, test in EMERGENCE_TESTS.items():
            part = self.tests[self.tests.test == test].set_index("step")
            for suffix, column in (("", "difference"), ("_low", "low"), ("_high", "high")):
                out[name + suffix] = [0.0 if step == self.steps[0] else float(part.loc[step, column])
                                      for step in self.steps]
        return out

    def emergence(self) -> pd.Series:
        """The step from which each measure beats the untrained network for good (tdsae.stats.emergence_step;
        None if it does not at the final step): imitation (r with held-out agents above step 0's, bootstrap
        lower bound > 0), in-context learning (the score's upper bound < 0), and each latent of EMERGENCE_TESTS
        (its gain's lower bound > 0)."""
        behaviour, gains = self.behaviour.set_index("step"), self.latent_gains().set_index("step")
        holds = {"imitation": behaviour.r_low > 0, "in-context learning": behaviour.icl_high < 0,
                 **{name: (gains[name + "_low"] > 0) & (gains.index > self.steps[0]) for name in EMERGENCE_TESTS}}
        return pd.Series({name: emergence_step(held.index.to_numpy(), held.fillna(False).to_numpy())
                          for name, held in holds.items()}, dtype=object)

    def rank(self, step) -> int:
        """The checkpoint index of a step (0 for the untrained network); len(steps) for None (never)."""
        return len(self.steps) if step is None else self.steps.index(step)

    def trace(self, panel: str) -> tuple[pd.DataFrame, float]:
        """The final checkpoint's best latent of a panel followed back through the checkpoints of its layer
        (tdsae.latents.trace_back), and the ceiling: the best one-to-one cosine the same latent finds in the
        final step's SAE of the next SAE seed (NaN with one seed)."""
        final = self.best[(self.best.panel == panel) & (self.best.step == self.steps[-1])]
        if final.empty:
            raise ValueError(f"no best latent of panel {panel!r} at the final step; the panels are "
                             f"{sorted(self.best.panel.unique())}")
        layer, unit = int(final.layer.iloc[0]), int(final.unit.iloc[0])
        trace = trace_back(self.decoders[layer], unit).assign(layer=layer)
        seeds = list(self.final_decoders)
        ceiling = float("nan")
        if len(seeds) > 1:
            pairs = match_one_to_one(cosine_matrix(self.final_decoders[seeds[0]][layer],
                                                   self.final_decoders[seeds[1]][layer]))
            ceiling = float(pairs.set_index("a").similarity.get(unit, float("nan")))
        return trace, ceiling

    def level_shares(self) -> pd.DataFrame:
        """Share of the sampled latents at each level (tdsae.latents.concepts.LEVELS) per step, pooled over
        layers: [step x level]."""
        return self.concepts.groupby("step")["level"].apply(level_shares).unstack()[list(LEVELS)]

    def selected_gain(self, name: str) -> pd.Series:
        """The gain over step 0 of a latent of EMERGENCE_TESTS at the one checkpoint where it is largest on the
        *selection* half (best latent over layers, first SAE seed), reported on the report half: the test row
        (step, test, difference, low, high, r_a, r_b). Choosing the checkpoint on the other half keeps the
        maximum over checkpoints from flattering itself."""
        single = [n for n, test in EMERGENCE_TESTS.items() if "pair" not in test]  # strengths hold single latents
        if name not in single:
            raise ValueError(f"unknown single latent {name!r}; choose one of: {', '.join(single)}")
        first_seed = self.strengths.sae_seed.iloc[0]
        chosen = self.strengths[(self.strengths.panel == TEST_PANELS[EMERGENCE_TESTS[name]])
                                & (self.strengths.sae_seed == first_seed)]
        strength = chosen.assign(r_select=chosen.r_select.abs()).groupby("step").r_select.max()
        step = int((strength.drop(self.steps[0]) - strength[self.steps[0]]).idxmax())
        tests = self.tests[(self.tests.test == EMERGENCE_TESTS[name]) & (self.tests.step == step)]
        return tests.iloc[0]


def checkpoint_study(settings, task_name: str = "twostep", sae_seeds=None, n_sampled: int = 100, n_agents: int = 64,
                     n_boot: int = 200, n_edge: int = 5, seed_steps=None, store=None) -> CheckpointStudy:
    """Everything chapter 11 measures on one organism's checkpoints.

    Args: settings: a resolved Preset of an organism (organism_settings for a pretrained preset);
    task_name: "twostep" or "gridworld" (Q-learner targets); sae_seeds: SAE seeds per checkpoint (default: the
    preset's seed and the next one; the first is chapters 6-7's); n_sampled: latents 0..n_sampled-1 of each
    SAE whose activation is explained (by ID, as Inaba et al. sampled); n_agents: held-out agents that score
    the behaviour; n_boot: bootstrap resamples of every interval; n_edge: episodes at each end of a transcript
    that the in-context-learning score compares (tdsae.organism.in_context_score); seed_steps: the steps at which
    every SAE seed is trained (default: all; elsewhere the first seed only, whose SAEs every analysis reads).
    """
    check_request(settings, task_name)
    if task_name not in ("twostep", "gridworld"):
        raise ValueError(f"checkpoint_study reads Q-learner targets, which task {task_name!r} lacks; use "
                         "'twostep' or 'gridworld'")
    sae_seeds = [check_seed(s, "sae_seeds") for s in ((settings.seed, settings.seed + 1) if sae_seeds is None
                                                       else sae_seeds)]
    if not sae_seeds:
        raise ValueError("sae_seeds is empty; give at least one SAE seed")
    n_sampled, n_agents = check_count(n_sampled, "n_sampled"), check_count(n_agents, "n_agents")
    n_boot, n_edge = check_int(n_boot, "n_boot", 0), check_count(n_edge, "n_edge")
    if 2 * n_edge > settings.n_episodes:
        raise ValueError(f"n_edge={n_edge} episodes at each end need at least {2 * n_edge} episodes; the preset plays "
                         f"{settings.n_episodes}")
    if seed_steps is not None:
        seed_steps = [check_int(step, "seed_steps", 0) for step in seed_steps]
    sources = checkpoint_sources(settings, task_name)
    steps = list(sources)
    seed_steps = steps if seed_steps is None else seed_steps
    if set(seed_steps) - set(steps):
        raise ValueError(f"seed_steps {sorted(set(seed_steps) - set(steps))} are not checkpoints; the organism has "
                         f"steps {steps}")
    task = task_for(settings, task_name)
    played = played_episodes(settings, task_name, store=store)
    stores = {step: checkpoint_store(settings, task_name, step, store) for step in steps}
    targets = reference_targets(task, played.trajectory, stores[steps[-1]].index, settings.q_alpha, settings.gamma)
    selection = split_experiments(settings.n_experiments, settings.seed)
    recipe = configs_from_settings(settings)[1]
    tokens = None
    rows = {name: [] for name in ("metrics", "strengths", "tests", "best", "behaviour", "concepts", "nulls")}
    decoders, baseline, step0_saes = {}, None, None
    for step in steps:
        saes_by_seed = {seed: checkpoint_saes(settings, task_name, step, seed, store)[1]
                        for seed in (sae_seeds if step in seed_steps else sae_seeds[:1])}
        first = saes_by_seed[sae_seeds[0]]
        step0_saes = first if step == steps[0] else step0_saes
        for seed, saes in saes_by_seed.items():
            for layer, entry in saes.items():
                rows["metrics"].append({"step": step, "sae_seed": seed, "layer": layer,
                                        **{k: entry.metrics[k] for k in ("explained_variance", "l0", "frac_alive")}})
            rows["strengths"] += _strengths(stores[step], saes, targets, selection, settings.seed, step, seed)
        for layer, entry in first.items():
            decoders.setdefault(layer, {})[step] = entry.sae.W_dec.detach().float().cpu().numpy()
        rows["nulls"] += _null_rows(stores[step], first, targets, selection, settings.seed, step)
        if step != steps[0]:
            contrasts = td_q_contrasts({"trained": stores[step], "untrained": stores[steps[0]]},
                                       {"trained": first, "untrained": step0_saes}, targets, selection, n_boot=0,
                                       contrast_boot=max(n_boot, 1), seed=settings.seed)
            rows["tests"] += [{"step": step, "test": test, **values} for test, values in contrasts.tests.items()
                              if "low" in values]
            rows["tests"].append({"step": step, "test": "td_q_partial_latent_vs_untrained",
                                  **_q_controlled_gain(stores[step], stores[steps[0]], first, step0_saes, targets,
                                                       selection, max(n_boot, 1), settings.seed)})
            rows["best"] += [{"step": step, "panel": panel, **contrasts.best.loc[(panel, "trained", "SAE latent")]
                              [["layer", "unit", "r_report"]].to_dict()} for panel in PANELS]
        model = load_model(sources[step], device=settings.device)
        if tokens is None:
            tokens = played_token_ids(model.tokenizer, played, range(settings.n_experiments)).numpy()
        choices = compare_choices(model, model.tokenizer, task_name, n_agents, settings.seed, recipe)
        baseline = choices if baseline is None else baseline
        gain = r_difference(choices, baseline, n_boot, settings.seed)
        icl = in_context_score(model, model.tokenizer, task_name, n_agents, settings.seed, recipe, n_edge,
                               n_boot=n_boot)
        rows["behaviour"].append({"step": step, "r": choices.r, "r_gain": gain["difference"], "r_low": gain["low"],
                                  "r_high": gain["high"], "icl": icl.score, "icl_low": icl.low, "icl_high": icl.high})
        rows["concepts"] += _concept_rows(stores[step], first, targets, tokens, played.trajectory, selection, step,
                                          n_sampled)
    final_decoders = {seed: {layer: entry.sae.W_dec.detach().float().cpu().numpy() for layer, entry in saes.items()}
                      for seed, saes in saes_by_seed.items()}  # the loop ended at the final step
    frames = {name: pd.DataFrame(value) for name, value in rows.items()}
    return CheckpointStudy(settings.organism, steps, frames["metrics"], frames["strengths"], frames["tests"],
                           frames["best"], frames["behaviour"], frames["concepts"], frames["nulls"], decoders,
                           final_decoders)


def _panel(targets: pd.DataFrame, panel: str) -> tuple[pd.DataFrame, str, bool, tuple]:
    """(rows, target column, reward controlled, extra controls) of a panel of PANELS or of Q_CONTROLLED."""
    if panel == Q_CONTROLLED:
        return panel_rows(targets, "TD error, reward controlled").dropna(subset=list(Q_CONTROLS)), "td_error", True, \
            Q_CONTROLS
    _, column, partial = PANELS[panel]
    return panel_rows(targets, panel), column, partial, ()


def _q_controlled_gain(trained, untrained, trained_saes: dict, untrained_saes: dict, targets: pd.DataFrame,
                       selection: np.ndarray, n_boot: int, seed: int) -> dict:
    """The trained network's best Q-controlled TD latent against the untrained one's, each at its own best layer
    (chosen on the selection half): compare_best's {"difference", "low", "high", "r_a", "r_b"}."""
    rows, column, _, extra = _panel(targets, Q_CONTROLLED)
    picked = []
    for acts_store, saes in ((trained, trained_saes), (untrained, untrained_saes)):
        latents = {layer: units_at(acts_store, layer, rows.row.to_numpy(), entry.sae)
                   for layer, entry in sorted(saes.items())}
        table = unit_profile(latents, rows, target=column, selection=selection, partial=True, n_boot=0, seed=seed,
                             extra_controls=extra)
        picked.append(latents[int(table.loc[table.r_select.abs().idxmax(), "layer"])])
    return compare_best(*picked, rows, target=column, selection=selection, partial=True, n_boot=n_boot, seed=seed,
                        extra_controls=extra)


def _strengths(acts_store, saes: dict, targets: pd.DataFrame, selection: np.ndarray, seed: int, step: int,
               sae_seed: int) -> list[dict]:
    """The best latent per layer of SEED_PANELS for one SAE seed (chosen on the selection half, reported on the
    other; no intervals): rows of step, sae_seed, panel, layer, unit, r_select, r_report."""
    out = []
    for panel in SEED_PANELS:
        panel_targets, column, partial, extra = _panel(targets, panel)
        latents = {layer: units_at(acts_store, layer, panel_targets.row.to_numpy(), entry.sae)
                   for layer, entry in sorted(saes.items())}
        table = unit_profile(latents, panel_targets, target=column, selection=selection, partial=partial, n_boot=0,
                             seed=seed, extra_controls=extra)
        out += [{"step": step, "sae_seed": sae_seed, "panel": panel, **row}
                for row in table[["layer", "unit", "r_select", "r_report"]].to_dict("records")]
    return out


def _null_rows(acts_store, saes: dict, targets: pd.DataFrame, selection: np.ndarray, seed: int,
               step: int) -> list[dict]:
    """The split-half search for TD errors shuffled across rows (reward controlled), per layer: what the search
    alone finds, at this checkpoint. Rows of step, layer, r_select, r_report, n_report."""
    outcomes = panel_rows(targets, "TD error, reward controlled")
    shuffled = outcomes.assign(td_error=shuffled_target(outcomes.td_error.to_numpy(float),
                                                        outcomes.experiment.to_numpy(), seed, "rows"))
    latents = {layer: units_at(acts_store, layer, outcomes.row.to_numpy(), entry.sae)
               for layer, entry in sorted(saes.items())}
    table = unit_profile(latents, shuffled, target="td_error", selection=selection, partial=True, n_boot=0, seed=seed)
    return table[["layer", "r_select", "r_report", "n_report"]].assign(step=step).to_dict("records")


def _concept_rows(acts_store, saes: dict, targets: pd.DataFrame, tokens: np.ndarray, traj, selection: np.ndarray,
                  step: int, n_sampled: int) -> list[dict]:
    """explained_shares of latents 0..n_sampled-1 of every layer's SAE at one checkpoint, as rows."""
    surface, concept = context_designs(targets, tokens, traj)
    out = []
    for layer, entry in sorted(saes.items()):
        latents = units_at(acts_store, layer, targets.row.to_numpy(), entry.sae)[:, :n_sampled]
        table = explained_shares(latents, surface, concept, targets.experiment.to_numpy(), selection)
        out += table.assign(step=step, layer=layer).to_dict("records")
    return out


def organism_checkpoint_studies(settings, task_name: str = "twostep", **options) -> dict[int, CheckpointStudy]:
    """checkpoint_study of every organism of the population: {organism: CheckpointStudy}.

    Organism 0 gets every SAE seed at every checkpoint (how far the SAE's own draw moves a result, beside the change
    over training); the others at the final step only (the ceiling their traced latents are read against), which
    halves the SAEs the chapter trains.
    """
    studies = {}
    for member in population(settings):
        seed_steps = None if member.organism == 0 else [max(checkpoint_sources(member, task_name))]
        studies[member.organism] = checkpoint_study(member, task_name, seed_steps=seed_steps, **options)
    return studies
