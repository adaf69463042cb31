"""How well a model predicts a graph walk: its log-probability of the node the walk reached next."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.stats import paired_difference


def next_node_prediction(played, n_nodes: int) -> tuple[np.ndarray, dict]:
    """The model's log-probability of the true next node, by walk segment, and its gain over guessing.

    Args: played: a PlayResult of the graph task (choice_logprobs over the experiment's nodes);
    n_nodes: nodes of the graph (uniform guessing gives log(1 / n_nodes)).
    Returns: (curve [n_experiments, n_episodes] mean log P(next node) per segment; paired_difference of the
    second half of the walk's mean against log(1 / n_nodes), over experiments).
    """
    traj = played.trajectory
    if n_nodes < 2:
        raise ValueError(f"n_nodes must be at least 2, got {n_nodes!r}")
    experiment, column = np.nonzero(traj.valid)
    logp_next = played.choice_logprobs[experiment, column, traj.next_state[experiment, column]]
    by_segment = pd.DataFrame({"episode": traj.episode[experiment, column], "experiment": experiment,
                               "logp": logp_next})
    curve = by_segment.groupby(["experiment", "episode"]).logp.mean().unstack().to_numpy()
    late = curve[:, curve.shape[1] // 2:].mean(1)
    return curve, paired_difference(late, np.full_like(late, np.log(1 / n_nodes)))
