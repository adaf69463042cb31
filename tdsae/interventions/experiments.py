"""Causal tests of latents: play with them edited, and read later layers with them edited.

Two experiments, the paper's panels E-F and G-H (PAPERS.md §1.8):

- behaviour: the model plays the task again, on the same experiments and seeds, with chosen
  latents lesioned (scaled by 0), scaled negatively, or with controls (a frequency-matched random
  latent, the SAE's reconstruction spliced in); reward, fitted learning rate and inverse
  temperature, and how closely choices follow a reference Q-learner's values are compared with
  unedited play, experiment by experiment;
- representation: the unedited transcripts are read again with the edit applied, and the units
  that tracked Q-values and TD errors at later layers (chosen without any edit) are correlated
  with the unedited targets once more.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from tdsae.activations.harvest import harvest_activations
from tdsae.activations.store import rows_of
from tdsae.artifacts import ArtifactStore
from tdsae.behaviour.estimation import fit_model
from tdsae.interventions.edits import play_with_edits
from tdsae.latents.profiles import units_at
from tdsae.latents.targets import covariates_of, reference_targets
from tdsae.models import check_edits, torch_module
from tdsae.play.result import load_played, save_played
from tdsae.runtime import tqdm
from tdsae.stats import bootstrap_interval, correlations, experiment_rows, residualize
from tdsae.validation import check_count, check_episode_counts, check_int, check_latent_indices, check_seed

EDITED_PLAY = "edited-play"  # artifact kind of one condition's play on one seed (play_conditions' play_cache)


def matched_latents(frequency: np.ndarray, chosen, seed: int) -> list[int]:
    """For each chosen latent, another latent whose firing frequency is closest (ties broken at
    random, never a chosen one, never the same twice): the control for 'any latent this active'.

    Args: frequency [d_sae] fraction of rows on which each latent fires; chosen: latent indices.
    """
    frequency = np.asarray(frequency, float)
    chosen = check_latent_indices(chosen, len(frequency), "chosen latents")
    rng = np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=(13,)))
    taken = set(chosen)
    picks = []
    for latent in chosen:
        gap = np.abs(frequency - frequency[int(latent)]) + rng.random(len(frequency)) * 1e-9
        gap[list(taken)] = np.inf
        pick = int(np.argmin(gap))
        taken.add(pick)
        picks.append(pick)
    return picks


def behaviour_of(task, played, n_random_episodes: int, alpha: float, gamma: float, seed: int) -> pd.DataFrame:
    """Per experiment: mean reward per episode after the random ones, fitted Q-learning alpha and
    beta, and the correlation of the model's choice log-odds with a reference Q-learner's value
    difference (decisions after the random episodes; two-action tasks only).
    """
    traj = played.trajectory
    check_episode_counts(traj.n_experiments, traj.n_episodes, n_random_episodes)
    rewards = traj.episode_rewards()[:, n_random_episodes:].mean(1)
    fit = fit_model(task, traj, "qlearning", n_random_episodes=n_random_episodes, seed=seed)
    frame = pd.DataFrame({"experiment": np.arange(traj.n_experiments), "reward": rewards,
                          "alpha": fit.params["alpha"], "beta": fit.params["beta"]})
    if task.n_actions == 2:
        e, c = np.nonzero(traj.valid & (traj.episode >= n_random_episodes))
        index = pd.DataFrame({"experiment": e, "column": c, "step": traj.step[e, c], "kind": "decision"})
        q_diff = reference_targets(task, traj, index, alpha, gamma).q_diff.to_numpy()
        log_odds = played.choice_logprobs[e, c, 0] - played.choice_logprobs[e, c, 1]
        coupling = pd.DataFrame({"experiment": e, "q": q_diff, "odds": log_odds}).groupby("experiment").apply(
            lambda g: np.corrcoef(g.q, g.odds)[0, 1] if g.q.std() > 0 and g.odds.std() > 0 else np.nan,
            include_groups=False)
        frame["value_coupling"] = frame.experiment.map(coupling)
    return frame


def play_conditions(model, task, conditions: dict, n_experiments: int, n_episodes: int, seeds,
                    n_random_episodes: int, alpha: float, gamma: float, progress: bool = True,
                    experiments_per_batch: int | None = None, play_cache: ArtifactStore | None = None) -> pd.DataFrame:
    """Play every condition (a name -> list of LatentEdits; [] is unedited play) on every seed
    (experiments_per_batch: as play_task's, for story play).

    play_cache: an ArtifactStore to keep each (condition, seed) play in as it finishes, keyed by a fingerprint of
    the model's weights and the edits' SAEs, layers, latents and factors: a long study stopped part-way (a
    pretrained model's 14 conditions take hours on a CPU) plays only what is missing when called again.
    Returns: behaviour_of rows with condition and seed columns, one per experiment and seed.
    Every condition's edits and every seed are checked before the first condition plays.
    """
    check_episode_counts(n_experiments, n_episodes, n_random_episodes)
    seeds = [check_seed(seed) for seed in seeds]
    if experiments_per_batch is not None:
        check_count(experiments_per_batch, "experiments_per_batch")
    if play_cache is not None and not isinstance(play_cache, ArtifactStore):
        raise ValueError(f"play_cache must be a tdsae.artifacts.ArtifactStore or None, got {play_cache!r}")
    conditions = {name: check_edits(model, edits) for name, edits in conditions.items()}
    fingerprint = None if play_cache is None else weights_fingerprint(torch_module(model))
    quiet = {} if progress else {"disable": True}
    frames = []
    for name, edits in tqdm(list(conditions.items()), desc="conditions", unit="condition", **quiet):
        for seed in seeds:
            played = cached_play_with_edits(model, task, n_experiments, n_episodes, int(seed), n_random_episodes,
                                            edits, experiments_per_batch, play_cache, fingerprint)
            frames.append(behaviour_of(task, played, n_random_episodes, alpha, gamma, int(seed))
                          .assign(condition=name, seed=int(seed)))
    return pd.concat(frames, ignore_index=True)


def cached_play_with_edits(model, task, n_experiments: int, n_episodes: int, seed: int, n_random_episodes: int,
                           edits, experiments_per_batch: int | None = None,
                           play_cache: ArtifactStore | None = None, model_fingerprint: str | None = None):
    """play_with_edits, kept in play_cache (an ArtifactStore; None plays without keeping) under a key of the
    model's weights, the task, the counts, the seed and every edit's fingerprint, so that the same play asked
    for twice (a chapter's unedited replay and a study's unedited condition) is played once.
    model_fingerprint: weights_fingerprint of the model, when the caller has it already.
    Returns: the PlayResult.
    """
    def play():
        return play_with_edits(model, task, n_experiments, n_episodes, seed, n_random_episodes, edits,
                               experiments_per_batch)
    if play_cache is None:
        return play()
    if not isinstance(play_cache, ArtifactStore):
        raise ValueError(f"play_cache must be a tdsae.artifacts.ArtifactStore or None, got {play_cache!r}")
    check_episode_counts(n_experiments, n_episodes, n_random_episodes)
    edits = check_edits(model, edits)
    if experiments_per_batch is not None:
        check_count(experiments_per_batch, "experiments_per_batch")
    key = {"model": model_fingerprint or weights_fingerprint(torch_module(model)), "task": repr(task),
           "n_experiments": n_experiments, "n_episodes": n_episodes, "n_random_episodes": n_random_episodes,
           "experiments_per_batch": experiments_per_batch, "seed": check_seed(seed),
           "edits": [edit_fingerprint(edit) for edit in edits]}
    return load_played(play_cache.load_or_build(EDITED_PLAY, key, lambda tmp: save_played(play(), tmp)))


def weights_fingerprint(module, values_per_tensor: int = 4096) -> str:
    """A short hash of a torch module's parameters and buffers: every tensor's name, shape, dtype and device, up
    to ``values_per_tensor`` of its values spread evenly through it, and the hub id or folder it came from.
    Training or re-initialising moves every value, so two different networks differ here, at a cost that does
    not grow with the model."""
    digest = hashlib.sha256()
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}:{tensor.device.type};".encode())
        if not tensor.is_meta:  # a remote model's local copy has no values; its hub id names them
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // values_per_tensor)
            digest.update(flat[::step][:values_per_tensor].float().cpu().numpy().tobytes())
    digest.update(str(getattr(getattr(module, "config", None), "_name_or_path", "")).encode())
    return digest.hexdigest()[:32]


def edit_fingerprint(edit) -> dict:
    """What makes an edit (tdsae.interventions.LatentEdit or one like it) edit what it edits, as cache-key fields."""
    positions = getattr(edit, "positions", None)
    sae = getattr(edit, "sae", None)
    return {"type": type(edit).__name__, "layer": int(edit.layer), "latents": list(getattr(edit, "latents", [])),
            "factor": getattr(edit, "factor", None), "keep_error": getattr(edit, "keep_error", None),
            "positions": None if positions is None else hashlib.sha256(positions.cpu().numpy().tobytes()).hexdigest(),
            "sae": None if sae is None else weights_fingerprint(sae)}


def effects_against(table: pd.DataFrame, baseline: str, measures=("reward", "alpha", "beta", "value_coupling"),
                    n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each condition minus the baseline condition, paired by (seed, experiment): mean and 95%
    bootstrap interval over the pairs (medians for alpha and beta, which run to their bounds).

    Returns: rows of condition, measure, effect, low, high.
    """
    if baseline not in set(table.condition):
        raise ValueError(f"baseline condition {baseline!r} is not in the table; it holds conditions "
                         f"{list(dict.fromkeys(table.condition))}")
    n_boot = check_int(n_boot, "n_boot", 0)
    rng = np.random.default_rng(check_seed(seed))
    base = table[table.condition == baseline].set_index(["seed", "experiment"])
    rows = []
    for condition, part in table[table.condition != baseline].groupby("condition", sort=False):
        part = part.set_index(["seed", "experiment"])
        for measure in measures:
            if measure not in part:
                continue
            diff = (part[measure] - base[measure]).dropna().to_numpy()
            statistic = np.median if measure in ("alpha", "beta") else np.mean
            low, high = bootstrap_interval(lambda chosen: statistic(diff[chosen]), np.arange(len(diff)), n_boot, rng)
            rows.append({"condition": condition, "measure": measure, "effect": float(statistic(diff)),
                         "low": low, "high": high})
    return pd.DataFrame(rows)


def later_layer_tracking(model, played, saes: dict, edits_by_condition: dict, targets: pd.DataFrame,
                         selection: np.ndarray, choices: dict, tmp_dir, experiments=None) -> tuple[pd.DataFrame, dict]:
    """How well fixed units at later layers still track the unedited targets once an edit is applied.

    Args: played: the unedited episodes, read again with each condition's edits; saes: {layer:
    LayerSAE}; edits_by_condition: condition -> LatentEdits; targets: reference_targets of the
    unedited episodes (entries of both kinds); selection: split_experiments' mask; choices:
    {(target, layer, partial): BestUnit chosen on the unedited selection half}; experiments: the
    experiments to read again (None: all). Only report-half experiments are scored, so only those of
    them are read: a pretrained model's reading costs a forward pass over every story.
    Returns: (rows of condition, target, layer, partial, r on the report half;
    {(condition, target, layer): (unit values, target values, experiments)} after the partial's
    regression, for drop_difference's bootstrap).
    """
    layers = sorted({layer for _, layer, _ in choices})
    missing = [layer for layer in layers if layer not in saes]
    if missing:
        raise ValueError(f"layers {missing} have a chosen unit but no SAE; the SAEs cover layers {sorted(saes)}")
    edits_by_condition = {name: check_edits(model, edits) for name, edits in edits_by_condition.items()}
    n_experiments = played.trajectory.n_experiments
    selection = np.asarray(selection, bool)
    if selection.shape != (n_experiments,):
        raise ValueError(f"selection has shape {selection.shape}; expected ({n_experiments},), one per experiment")
    wanted = np.arange(n_experiments) if experiments is None else np.unique(np.asarray(experiments))
    if wanted.dtype.kind not in "iu" or (len(wanted) and not 0 <= wanted.min() <= wanted.max() < n_experiments):
        raise ValueError(f"experiments {list(experiments)[:10]} must be indices of played experiments, integers in "
                         f"0 .. {n_experiments - 1}")
    read = wanted[~selection[wanted]]
    if len(read) == 0:
        raise ValueError(f"experiments {wanted.tolist()[:10]} hold no report-half experiment (selection False) "
                         "to score")
    # the stored rows of the experiments read, numbered in the same order, are the reading's rows
    index = rows_of(played)
    kept_rows = np.unique(index.row[index.experiment.isin(read)].to_numpy())
    scored = ~selection[targets.experiment.to_numpy()] & np.isin(targets.experiment.to_numpy(), read)
    rows, samples = [], {}
    for number, (name, edits) in enumerate(edits_by_condition.items()):
        edited = harvest_activations(model, played.select(read), f"{tmp_dir}/edited-{number}", layers=layers,
                                     edits=edits, progress=False)
        for (target, layer, partial), best in choices.items():
            kind_rows = targets[targets[target].notna().to_numpy() & scored]
            covariates = covariates_of(kind_rows) if partial else None
            reading_rows = np.searchsorted(kept_rows, kind_rows.row.to_numpy())
            x = residualize(best.column(units_at(edited, layer, reading_rows, saes[layer].sae)), covariates)
            y = residualize(kind_rows[target].to_numpy(float), covariates)
            samples[(name, target, layer)] = (x, y, kind_rows.experiment.to_numpy())
            rows.append({"condition": name, "target": target, "layer": layer, "partial": partial,
                         "r": float(correlations(x[:, None], y)[0])})
    return pd.DataFrame(rows), samples


def drop_difference(samples: dict, target: str, layers, edited: tuple, controlled: tuple, n_boot: int = 500,
                    seed: int = 0) -> dict:
    """(|r| lost by the edited latents) - (|r| lost by their controls), averaged over later layers.

    Args: samples: later_layer_tracking's; edited, controlled: (condition at factor 1, condition at
    the strong factor) for the target latents and for their matched controls. Resamples report-half
    experiments (the same for all four conditions). Returns: {"difference", "low", "high"}.
    """
    conditions = [*edited, *controlled]
    absent = sorted({(c, target, l) for c in conditions for l in layers} - set(samples), key=str)
    if absent:
        raise ValueError(f"no samples for (condition, target, layer) {absent[:3]}; later_layer_tracking gave "
                         f"{sorted(samples, key=str)[:6]}")

    def statistic(pick):
        strength = {c: np.mean([abs(np.corrcoef(samples[(c, target, l)][0][pick[l]],
                                                samples[(c, target, l)][1][pick[l]])[0, 1]) for l in layers])
                    for c in conditions}
        return (strength[edited[0]] - strength[edited[1]]) - (strength[controlled[0]] - strength[controlled[1]])

    experiments = {l: samples[(conditions[0], target, l)][2] for l in layers}
    labels = np.unique(np.concatenate(list(experiments.values())))
    everything = {l: np.arange(len(experiments[l])) for l in layers}
    rows_of = {l: experiment_rows(experiments[l]) for l in layers}
    low, high = bootstrap_interval(lambda chosen: statistic({l: rows_of[l](chosen) for l in layers}), labels, n_boot, seed)
    return {"difference": float(statistic(everything)), "low": low, "high": high}
