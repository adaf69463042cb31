"""Does a representation know the graph's communities? Node means, silhouettes, metric MDS.

Node names differ between experiments, so structure is measured within each experiment: the mean
residual vector of each node (over the decision tokens that name it) gives 15 points, and the
silhouette of the community labels on those points says how well they cluster. The null
shuffles the labels over the nodes of the same experiment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.validation import check_int, check_seed


def node_means(acts: np.ndarray, entries: pd.DataFrame, n_nodes: int) -> np.ndarray:
    """Mean vector of each node in each experiment.

    Args: acts [n, d] at the rows of entries; entries: rows with experiment and node columns.
    Returns: [n_experiments, n_nodes, d], NaN for a node an experiment never visited.
    """
    experiments = np.unique(entries.experiment)
    out = np.full((len(experiments), n_nodes, acts.shape[1]), np.nan)
    position = {e: i for i, e in enumerate(experiments)}
    frame = pd.DataFrame(acts).assign(experiment=entries.experiment.to_numpy(), node=entries.node.to_numpy())
    for (experiment, node), group in frame.groupby(["experiment", "node"]):
        out[position[experiment], int(node)] = group.drop(columns=["experiment", "node"]).to_numpy().mean(0)
    return out


def community_silhouettes(means: np.ndarray, communities: np.ndarray, n_shuffles: int = 20,
                          seed: int = 0) -> pd.DataFrame:
    """Silhouette of the true community labels on each experiment's node means, and of shuffled labels.

    Args: means [n_experiments, n_nodes, d]; communities [n_nodes]. Experiments with an unvisited
    node are skipped. Returns: rows of experiment, silhouette, shuffled (mean over n_shuffles).
    """
    from sklearn.metrics import silhouette_score

    n_shuffles = check_int(n_shuffles, "n_shuffles", 0)
    rng = np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=(17,)))
    rows = []
    for experiment, points in enumerate(means):
        if np.isnan(points).any():
            continue
        true = silhouette_score(points, communities)
        null = np.mean([silhouette_score(points, rng.permutation(communities)) for _ in range(n_shuffles)])
        rows.append({"experiment": experiment, "silhouette": float(true), "shuffled": float(null)})
    return pd.DataFrame(rows)


def mds_coordinates(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """Metric MDS (scikit-learn, as the paper) of points [n, d] to [n, 2], on Euclidean distances."""
    from sklearn.manifold import MDS

    return MDS(n_components=2, metric_mds=True, init="random", n_init=4,
               random_state=check_seed(seed)).fit_transform(points)
