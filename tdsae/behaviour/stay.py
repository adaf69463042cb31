"""Behavioural summaries of a played Trajectory that need no fitted model.

The Two-Step Task's classic signature (Daw et al. 2011): how often the first-stage choice is
repeated, split by whether the previous episode was rewarded and whether its transition was
common or rare. A model-free learner repeats rewarded choices whatever the transition (a main
effect of reward); a model-based learner repeats a rewarded choice after a common transition but
switches after a rare one (a reward x transition interaction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.validation import check_int

CONDITIONS = (("rewarded", "common"), ("rewarded", "rare"), ("unrewarded", "common"), ("unrewarded", "rare"))


def first_stage_table(traj, n_random_episodes: int = 0) -> pd.DataFrame:
    """One row per Two-Step episode: experiment, episode, first-stage action, common, reward, stay.

    ``stay`` says whether the next episode's first-stage action repeats this one (NaN for the last
    episode). Episodes before n_random_episodes are dropped *after* stay is computed, so the first
    learning episode's stay counts, as its choice was the model's.
    """
    if "common" not in traj.info:
        raise ValueError("first_stage_table needs a Two-Step trajectory (info['common'] is missing)")
    n_random_episodes = check_int(n_random_episodes, "n_random_episodes", 0)
    stage1, stage2 = slice(0, None, 2), slice(1, None, 2)
    action = traj.action[:, stage1].astype(float)  # [n, n_episodes]
    reward = traj.reward[:, stage2]
    stay = np.full_like(action, np.nan)
    stay[:, :-1] = action[:, 1:] == action[:, :-1]
    n, n_episodes = action.shape
    frame = pd.DataFrame({
        "experiment": np.repeat(np.arange(n), n_episodes),
        "episode": np.tile(np.arange(n_episodes), n),
        "action": action.ravel(),
        "common": traj.info["common"][:, stage1].ravel(),
        "rewarded": reward.ravel() > 0,
        "stay": stay.ravel(),
    })
    # the choice in episode k+1 is what stay measures; keep it only when that choice was not random
    return frame[(frame.episode + 1 >= n_random_episodes) & frame.stay.notna()].reset_index(drop=True)


def stay_probabilities(traj, n_random_episodes: int = 0) -> pd.DataFrame:
    """Per experiment, P(repeat first-stage choice) in each reward x transition condition.

    Returns: tidy frame with experiment, reward ("rewarded"/"unrewarded"), transition
    ("common"/"rare"), stay (NaN where an experiment never met the condition).
    """
    table = first_stage_table(traj, n_random_episodes)
    table["reward"] = np.where(table.rewarded, "rewarded", "unrewarded")
    table["transition"] = np.where(table.common, "common", "rare")
    means = table.groupby(["experiment", "reward", "transition"]).stay.mean()
    full = pd.MultiIndex.from_product([np.arange(traj.n_experiments), ["rewarded", "unrewarded"], ["common", "rare"]],
                                      names=["experiment", "reward", "transition"])
    return means.reindex(full).reset_index()


def stay_effects(stay: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, the reward main effect and the reward x transition interaction of stay.

    reward_effect = mean stay after reward - after no reward (model-free signature);
    interaction = (rewarded common - rewarded rare) - (unrewarded common - unrewarded rare)
    (model-based signature). Returns: frame indexed by experiment.
    """
    wide = stay.pivot_table(index="experiment", columns=["reward", "transition"], values="stay", dropna=False)
    rc, rr = wide[("rewarded", "common")], wide[("rewarded", "rare")]
    uc, ur = wide[("unrewarded", "common")], wide[("unrewarded", "rare")]
    return pd.DataFrame({"reward_effect": (rc + rr) / 2 - (uc + ur) / 2, "interaction": (rc - rr) - (uc - ur)})

