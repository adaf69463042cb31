"""Does a representation know the graph's communities? Node means, silhouettes, metric MDS.

Node names differ between experiments, so structure is measured within each experiment: the mean
residual vector of each node (over the decision tokens that name it) gives 15 points, and the
silhouette of the community labels on those points says how well they cluster. The null
shuffles the labels over the nodes of the same experiment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tdsae.stats import paired_difference
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
    from scipy.spatial.distance import pdist, squareform
    from sklearn.manifold import MDS

    # the distances are computed here and passed as such: given a square [n, n] array of points (the SR's
    # 15 x 15 rows), scikit-learn would warn that it might be a dissimilarity matrix
    distances = squareform(pdist(np.asarray(points, float)))
    return MDS(n_components=2, metric_mds=True, metric="precomputed", init="random", n_init=4,
               random_state=check_seed(seed)).fit_transform(distances)


def community_contrasts(stores: dict, decisions: pd.DataFrame, communities: np.ndarray, layer: int,
                        n_shuffles: int = 20, seed: int = 0) -> dict:
    """Chapter 9's community tests at one layer: each model's node means and silhouettes, each against its
    shuffled labels, and trained against untrained, paired by experiment.

    Args: stores: {"trained": ActivationStore, "untrained": ...} reading the same walks; decisions: sr_targets
    rows of kind "decision" (one per token naming a node); communities [n_nodes].
    Returns: {"means": {model: [n_experiments, n_nodes, d]}, "silhouettes": {model: community_silhouettes rows},
    "over_null": {model: paired_difference}, "over_untrained": paired_difference (trained - untrained)}.
    """
    for label in ("trained", "untrained"):
        if label not in stores:
            raise ValueError(f"community_contrasts needs stores labelled 'trained' and 'untrained'; "
                             f"got {sorted(stores)}")
    communities = np.asarray(communities)
    means = {model: node_means(store.acts(layer, decisions.row.to_numpy()), decisions, len(communities))
             for model, store in stores.items()}
    silhouettes = {model: community_silhouettes(vectors, communities, n_shuffles, seed)
                   for model, vectors in means.items()}
    over_null = {model: paired_difference(table.silhouette.to_numpy(), table.shuffled.to_numpy())
                 for model, table in silhouettes.items()}
    common = silhouettes["trained"].merge(silhouettes["untrained"], on="experiment",
                                          suffixes=("_trained", "_untrained"))
    over_untrained = paired_difference(common.silhouette_trained.to_numpy(), common.silhouette_untrained.to_numpy())
    return {"means": means, "silhouettes": silhouettes, "over_null": over_null, "over_untrained": over_untrained}
