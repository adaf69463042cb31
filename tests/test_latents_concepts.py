"""Token-level or concept-level: nested regressions on planted latents, and the reward history they read."""

import numpy as np
import pandas as pd
import pytest

from tdsae.latents.concepts import (CONCEPT_GAIN, LEVELS, context_designs, explained_shares, level_shares,
                                    reward_history)
from tdsae.latents.targets import split_experiments


class Traj:
    def __init__(self, reward, valid):
        self.reward, self.valid = np.asarray(reward, float), np.asarray(valid, bool)


def planted(n_experiments=40, n_steps=24, seed=0):
    """Rows of a fake two-kind index with words, a reward history and hidden values, and latents planted on each."""
    rng = np.random.default_rng(seed)
    reward = rng.integers(0, 2, (n_experiments, n_steps)).astype(float)
    traj = Traj(reward, np.ones_like(reward, bool))
    rows = []
    for e in range(n_experiments):
        for c in range(n_steps):
            for kind, position in (("decision", 2 * c + 1), ("outcome", 2 * c + 2)):
                rows.append({"experiment": e, "column": c, "episode": c // 2, "step": c % 2, "kind": kind,
                             "position": position})
    targets = pd.DataFrame(rows)
    targets["row"] = np.arange(len(targets))
    q = rng.normal(size=len(targets))
    targets["td_error"] = np.where(targets.kind == "outcome", rng.normal(size=len(targets)), np.nan)
    targets["q_chosen"] = np.where(targets.kind == "decision", q, np.nan)
    targets["q_diff"] = np.where(targets.kind == "decision", -q, np.nan)
    tokens = rng.integers(0, 6, (n_experiments, 2 * n_steps + 2))
    word = tokens[targets.experiment, targets.position]
    history = reward_history(traj, targets, 1)[:, 0]
    latents = np.column_stack([
        (word == 3) * 2.0 + rng.normal(0, 0.05, len(targets)),  # a word detector: token-level
        history * 1.5 + rng.normal(0, 0.05, len(targets)),  # the last reward: concept-level
        np.zeros(len(targets)),  # never fires: dead
        rng.normal(size=len(targets)),  # noise: unexplained
    ])
    return targets, tokens, traj, latents


def test_planted_latents_get_the_level_they_were_planted_with():
    targets, tokens, traj, latents = planted()
    surface, concept = context_designs(targets, tokens, traj)
    assert concept.shape[1] > surface.shape[1]
    table = explained_shares(latents, surface, concept, targets.experiment.to_numpy(), split_experiments(40, 0))
    assert table.level.tolist() == ["token-level", "concept-level", "dead", "unexplained"]
    assert table.gain[1] >= CONCEPT_GAIN and table.r2_surface[0] > 0.9 and abs(table.gain[0]) < 0.05
    shares = level_shares(table.level)
    assert list(shares.index) == list(LEVELS) and shares.sum() == pytest.approx(1.0)


def test_reward_history_reads_only_what_the_row_has_revealed_and_skips_padding():
    traj = Traj([[1, 0, 5, 2]], [[True, True, False, True]])  # column 2 is padding
    targets = pd.DataFrame({"experiment": [0, 0, 0, 0], "column": [0, 0, 3, 3],
                            "kind": ["decision", "outcome", "decision", "outcome"]})
    history = reward_history(traj, targets, 2)
    # decision of step 0: nothing yet; outcome of step 0: its own reward; decision of column 3: the valid
    # steps before it (0 then 1, padding skipped); its outcome: its own reward first
    assert history.tolist() == [[0, 0], [1, 0], [0, 1], [2, 0]]


def test_explained_shares_refuses_mismatched_rows_and_a_one_sided_split():
    targets, tokens, traj, latents = planted(n_experiments=4, n_steps=4)
    surface, concept = context_designs(targets, tokens, traj)
    experiments = targets.experiment.to_numpy()
    with pytest.raises(ValueError, match="differ in rows"):
        explained_shares(latents[:-1], surface, concept, experiments, split_experiments(4, 0))
    with pytest.raises(ValueError, match="one half"):
        explained_shares(latents, surface, concept, experiments, np.ones(4, bool))
    with pytest.raises(ValueError, match="outside token_ids"):
        context_designs(targets, tokens[:, :3], traj)
