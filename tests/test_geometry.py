"""Community structure: planted clusters give high silhouettes, shuffled labels do not; SR targets align."""

import numpy as np
import pandas as pd

from tdsae.agents import RandomAgent, SRLearner
from tdsae.latents.geometry import community_silhouettes, mds_coordinates, node_means
from tdsae.latents.targets import sr_targets
from tdsae.tasks import get_task, run_agent


def test_planted_communities_are_found_and_shuffled_labels_are_not():
    rng = np.random.default_rng(0)
    communities = np.repeat(np.arange(3), 5)
    centres = rng.normal(size=(3, 8)) * 5
    means = np.stack([centres[communities] + rng.normal(size=(15, 8)) for _ in range(6)])  # [experiments, nodes, d]
    table = community_silhouettes(means, communities, n_shuffles=10, seed=0)
    assert (table.silhouette > 0.6).all() and (table.shuffled < 0.1).all()
    flat = community_silhouettes(rng.normal(size=(6, 15, 8)), communities, n_shuffles=10, seed=0)
    assert abs(flat.silhouette.mean() - flat.shuffled.mean()) < 0.1
    coords = mds_coordinates(means[0], seed=0)
    assert coords.shape == (15, 2)


def test_node_means_average_the_rows_of_each_node_per_experiment():
    entries = pd.DataFrame({"experiment": [0, 0, 0, 1], "node": [2, 2, 0, 1]})
    acts = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [7.0, 7.0]])
    means = node_means(acts, entries, n_nodes=3)
    np.testing.assert_array_equal(means[0, 2], [2.0, 1.0])
    assert np.isnan(means[0, 1]).all() and np.isnan(means[1, 0]).all()


def test_sr_targets_match_the_sr_learner():
    task = get_task("graph", max_steps=10)
    traj = run_agent(task, RandomAgent(), 3, 4, seed=0)
    e, c = np.nonzero(traj.valid)
    one = pd.DataFrame({"experiment": e, "column": c, "step": traj.step[e, c]})
    index = pd.concat([one.assign(kind="decision"), one.assign(kind="outcome")], ignore_index=True)
    targets = sr_targets(task, traj, index, alpha=0.05, gamma=0.99)
    evaluation = SRLearner(alpha=0.05, gamma=0.99).evaluate(task, traj)
    out = targets[targets.kind == "outcome"]
    np.testing.assert_allclose(out.sr_td_error, evaluation.td_error[out.experiment, out.column])
    np.testing.assert_array_equal(out.node, traj.next_state[out.experiment, out.column])
    dec = targets[targets.kind == "decision"]
    np.testing.assert_array_equal(dec.node, traj.state[dec.experiment, dec.column])
    assert dec.sr_td_error.isna().all() and ((dec.sr_surprise >= 0) & (dec.sr_surprise <= 1)).all()


def test_mds_keeps_the_distances_of_points_that_lie_in_a_plane():
    """Points on a plane inside 10 dimensions: the 2-D map must reproduce their pairwise distances (up to
    rotation and reflection), and the same seed the same map."""
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(0)
    plane = rng.normal(size=(15, 2)) * 3
    points = plane @ np.linalg.qr(rng.normal(size=(10, 2)))[0].T + 5.0  # an isometric embedding, shifted
    coords = mds_coordinates(points, seed=0)
    assert coords.shape == (15, 2)
    assert np.corrcoef(pdist(coords), pdist(plane))[0, 1] > 0.999
    np.testing.assert_allclose(pdist(coords), pdist(plane), rtol=0.05, atol=0.05)
    np.testing.assert_array_equal(coords, mds_coordinates(points, seed=0))
