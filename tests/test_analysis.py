"""Finding TD and Q units: a planted unit is found, controls do not find it, halves never mix."""

import numpy as np
import pandas as pd
import pytest

from tdsae.agents import QLearner
from tdsae.analysis import (best_unit, correlations, covariates_of, reference_targets, residualize, shuffled_target,
                            split_experiments)
from tdsae.tasks import get_task, run_agent


def _planted(n_experiments=60, per=40, k=50, seed=0):
    """Rows of experiments; unit 7 carries the target, unit 3 only the reward, unit 11 is dead."""
    rng = np.random.default_rng(seed)
    experiments = np.repeat(np.arange(n_experiments), per)
    reward = rng.integers(0, 2, len(experiments)).astype(float)
    extra = rng.normal(size=len(experiments))
    target = 0.9 * reward + 0.4 * extra  # like a TD error at the outcome: mostly the reward
    units = rng.normal(size=(len(experiments), k))
    units[:, 7] = np.maximum(0, target + 0.3 * rng.normal(size=len(experiments)))  # a ReLU latent
    units[:, 3] = reward + 0.1 * rng.normal(size=len(experiments))  # reads the reward only
    units[:, 11] = 0.0
    return units, target, reward, experiments


def test_the_planted_unit_is_found_and_reported_on_the_other_half():
    units, target, reward, experiments = _planted()
    selection = split_experiments(60, seed=1)
    best = best_unit(units, target, experiments, selection)
    assert best.unit in (3, 7) and best.r_report > 0.7 and best.low < best.r_report < best.high
    partial = best_unit(units, target, experiments, selection, covariates=reward[:, None])
    assert partial.unit == 7 and partial.r_report > 0.3  # the reward-only unit loses once reward is controlled
    r_reward_unit = correlations(residualize(units[:, [3]], reward[:, None]), residualize(target, reward[:, None]))[0]
    assert abs(r_reward_unit) < 0.1


def test_shuffled_targets_find_nothing_on_the_report_half():
    units, target, _, experiments = _planted()
    selection = split_experiments(60, seed=1)
    null = best_unit(units, shuffled_target(target, experiments, seed=2), experiments, selection)
    assert abs(null.r_report) < 0.1 and abs(null.r_select) > abs(null.r_report)  # the search inflates the selection half


def test_dead_units_never_win_and_all_dead_gives_no_unit():
    units, target, _, experiments = _planted()
    r = correlations(units, target)
    assert np.isnan(r[11]) and np.isfinite(np.delete(r, 11)).all()
    selection = split_experiments(60, seed=1)
    assert best_unit(np.zeros((len(target), 4)), target, experiments, selection).unit == -1


def test_selection_and_report_halves_never_share_an_experiment():
    for seed in range(5):
        selection = split_experiments(101, seed)
        assert selection.sum() == 50 and (~selection).sum() == 51
    assert not np.array_equal(split_experiments(100, 0), split_experiments(100, 1))
    np.testing.assert_array_equal(split_experiments(100, 3), split_experiments(100, 3))


def test_reference_targets_match_the_q_learner_at_each_entry():
    task = get_task("twostep")
    traj = run_agent(task, QLearner(alpha=0.3, beta=3.0), 4, 6, seed=0)
    e, c = np.nonzero(traj.valid)
    index = pd.DataFrame({"experiment": e, "column": c, "step": traj.step[e, c], "kind": "outcome"})
    targets = reference_targets(task, traj, index, alpha=0.1, gamma=0.99)
    evaluation = QLearner(alpha=0.1, beta=1.0, gamma=0.99).evaluate(task, traj)
    np.testing.assert_allclose(targets.td_error, evaluation.td_error[e, c])
    q = evaluation.q_values[e, c]
    np.testing.assert_allclose(targets.q_diff, q[:, 0] - q[:, 1])
    second = targets.step == 1  # at the alien the TD error is the reward minus the chosen alien's value
    np.testing.assert_allclose(targets.td_error[second], (targets.reward - targets.q_chosen)[second])
    assert covariates_of(targets).shape == (len(targets), 2)


def test_per_experiment_learning_rates_are_used():
    task = get_task("twostep")
    traj = run_agent(task, QLearner(alpha=0.3, beta=3.0), 3, 5, seed=0)
    e, c = np.nonzero(traj.valid)
    index = pd.DataFrame({"experiment": e, "column": c, "step": traj.step[e, c], "kind": "outcome"})
    alphas = np.array([0.1, 0.5, 0.9])
    mixed = reference_targets(task, traj, index, alpha=alphas)
    for i, alpha in enumerate(alphas):
        alone = reference_targets(task, traj, index, alpha=alpha)
        np.testing.assert_allclose(mixed.td_error[index.experiment == i], alone.td_error[index.experiment == i])
    with pytest.raises(ValueError, match="alpha"):
        reference_targets(task, traj, index, alpha=np.array([0.1, 0.2]))
