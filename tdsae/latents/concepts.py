"""Token-level or concept-level? What explains a latent's activation, measured instead of labelled by hand.

Inaba et al. labelled 100 latents per checkpoint by hand as token-level, concept-level or uninterpretable.
Here two nested linear regressions decide, each fitted on the selection half of the experiments and
scored by its R^2 on the report half:

- the *surface* model: which word the row is, which word came before it, the kind of row (decision or
  outcome), the episode and the step within it, all one-hot;
- the *concept* model: the surface model plus the task's hidden variables, the rewards revealed so far
  (the last REWARD_LAGS of them) and a Q-learner's values and TD error.

Position (episode, step) sits in the surface model on purpose: an untrained network's residual stream
drifts with position, because its attention averages over a longer context, so a latent that follows the
episode index need not represent anything about the task. A latent is

- *dead* when it is non-zero on fewer than MIN_ACTIVE of the rows;
- *concept-level* when the hidden variables add at least CONCEPT_GAIN of held-out R^2 to the surface model;
- *token-level* when the surface model alone reaches TOKEN_R2 (and the task adds less);
- *unexplained* otherwise (the measured counterpart of "uninterpretable").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.latents.targets import check_target
from tdsae.validation import check_count

LEVELS = ("concept-level", "token-level", "unexplained", "dead")
TOKEN_R2 = 0.5  # held-out R^2 of the surface model that makes a latent token-level
CONCEPT_GAIN = 0.1  # held-out R^2 the hidden variables must add to make a latent concept-level
MIN_ACTIVE = 0.01  # a latent non-zero on fewer rows than this share is dead
REWARD_LAGS = 4  # rewards revealed so far that the concept model reads (two Two-Step episodes)
HIDDEN = ("td_error", "q_chosen", "q_diff")  # reference_targets columns the concept model reads besides rewards
# Inaba et al. (2025), the shares (%) of their 100 hand-labelled latents (IDs 0-99) per checkpoint of LLM-jp-3-1.8B,
# recomputed from the demo data they released (llm-jp-sae); the final checkpoint is step 988,240.
INABA_SHARES = {10: {"token-level": 32, "concept-level": 5, "uninterpretable": 63},
                100: {"token-level": 29, "concept-level": 6, "uninterpretable": 65},
                1_000: {"token-level": 72, "concept-level": 9, "uninterpretable": 17},
                10_000: {"token-level": 73, "concept-level": 25, "uninterpretable": 2},
                100_000: {"token-level": 67, "concept-level": 31, "uninterpretable": 2},
                988_240: {"token-level": 51, "concept-level": 46, "uninterpretable": 3}}


def context_designs(targets: pd.DataFrame, token_ids: np.ndarray, traj) -> tuple[np.ndarray, np.ndarray]:
    """The two nested designs at the rows of a reference_targets table.

    Args: targets: reference_targets rows (both kinds); token_ids: [n_experiments, seq] the words each
    experiment read (tdsae.play.played_token_ids); traj: the played trajectory (for the reward history).
    Returns: (surface [n, a], concept [n, a + b]), one-hot and numeric columns, no constant column.
    """
    for column in ("position", "episode", "step", "kind", *HIDDEN):
        check_target(targets, column)
    experiments, positions = targets.experiment.to_numpy(), targets.position.to_numpy()
    token_ids = np.asarray(token_ids)
    if positions.min() < 1 or positions.max() >= token_ids.shape[1] or experiments.max() >= len(token_ids):
        raise ValueError(f"the targets point at words outside token_ids {token_ids.shape}: positions "
                         f"{positions.min()}..{positions.max()}, experiments up to {experiments.max()}")
    surface = pd.get_dummies(pd.DataFrame({
        "word": token_ids[experiments, positions], "previous": token_ids[experiments, positions - 1],
        "kind": targets.kind.to_numpy(), "episode": targets.episode.to_numpy(), "step": targets.step.to_numpy(),
    }).astype(str), drop_first=True).to_numpy(float)
    hidden = np.column_stack([reward_history(traj, targets, REWARD_LAGS),
                              *(np.nan_to_num(targets[c].to_numpy(float)) for c in HIDDEN)])
    return surface, np.column_stack([surface, hidden])


def reward_history(traj, targets: pd.DataFrame, lags: int) -> np.ndarray:
    """The last ``lags`` rewards revealed at each row, newest first (0 before any): [n, lags].

    An outcome row has revealed its own step's reward; a decision row only those of the steps before it.
    Padding columns of the trajectory (a short Grid World episode's) are skipped.
    """
    lags = check_count(lags, "lags")
    valid = np.asarray(traj.valid, bool)
    rank = np.cumsum(valid, 1) - 1  # [n_experiments, n_columns]: index of a valid column among its row's
    compact = np.zeros((len(valid), valid.sum(1).max() if valid.size else 0))
    for e in range(len(valid)):
        compact[e, : valid[e].sum()] = traj.reward[e, valid[e]]
    e, c = targets.experiment.to_numpy(), targets.column.to_numpy()
    newest = rank[e, c] - (targets.kind != "outcome").to_numpy()  # the step itself at an outcome, the one before
    history = np.zeros((len(targets), lags))
    for lag in range(lags):
        column = newest - lag
        known = column >= 0
        history[known, lag] = compact[e[known], column[known]]
    return history


def explained_shares(latents: np.ndarray, surface: np.ndarray, concept: np.ndarray, experiments: np.ndarray,
                     selection: np.ndarray, ridge: float = 1e-3) -> pd.DataFrame:
    """Held-out R^2 of the surface and the concept model for every latent, and its level.

    Args: latents [n, k] activations at the rows of the designs; surface, concept: context_designs';
    experiments [n]; selection [n_experiments] bool (split_experiments): fit on True, score on False;
    ridge: penalty per row on the standardised design (keeps one-hot columns absent from a half stable).
    Returns: one row per latent: latent (its column), active (share of rows where it is non-zero),
    r2_surface, r2_concept, gain, level (one of LEVELS).
    """
    latents = np.asarray(latents, float)
    if not len(latents) == len(surface) == len(concept) == len(experiments):
        raise ValueError(f"latents ({len(latents)}), designs ({len(surface)}, {len(concept)}) and experiments "
                         f"({len(experiments)}) differ in rows")
    fit = np.asarray(selection)[np.asarray(experiments)]
    if fit.all() or not fit.any():
        raise ValueError("the selection puts every row in one half; both halves need rows")
    active = (latents > 0).mean(0)
    r2 = {name: _held_out_r2(design, latents, fit, ridge) for name, design in (("surface", surface),
                                                                                ("concept", concept))}
    gain = r2["concept"] - r2["surface"]
    level = np.where(active < MIN_ACTIVE, "dead", np.where(gain >= CONCEPT_GAIN, "concept-level",
                                                           np.where(r2["surface"] >= TOKEN_R2, "token-level",
                                                                    "unexplained")))
    return pd.DataFrame({"latent": np.arange(latents.shape[1]), "active": active, "r2_surface": r2["surface"],
                         "r2_concept": r2["concept"], "gain": gain, "level": level})


def _held_out_r2(design: np.ndarray, values: np.ndarray, fit: np.ndarray, ridge: float) -> np.ndarray:
    """R^2 on the rows not in ``fit`` of a ridge regression fitted on the rows in it, per column of values."""
    mean, scale = design[fit].mean(0), design[fit].std(0)
    scale = np.where(scale > 0, scale, 1.0)
    x = (design - mean) / scale
    x_fit, x_test = x[fit], x[~fit]
    y_fit, y_test = values[fit], values[~fit]
    y_mean = y_fit.mean(0)
    gram = x_fit.T @ x_fit + ridge * len(x_fit) * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x_fit.T @ (y_fit - y_mean))
    residual = ((y_test - y_mean - x_test @ weights) ** 2).sum(0)
    total = ((y_test - y_test.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 1e-12, 1.0 - residual / total, np.nan)


def level_shares(levels: pd.Series) -> pd.Series:
    """Share of each of LEVELS among the latents (zero for a level none has), in LEVELS' order."""
    counts = pd.Series(levels).value_counts()
    return pd.Series({level: counts.get(level, 0) / max(1, len(levels)) for level in LEVELS})
