"""Finding TD and Q units: a planted unit is found, controls do not find it, halves never mix."""

import numpy as np
import pandas as pd
import pytest

from tdsae.agents import QLearner
from tdsae.latents.search import best_pair, best_unit
from tdsae.latents.targets import covariates_of, reference_targets, shuffled_target, split_experiments
from tdsae.stats import correlations, residualize
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
    for seed in range(5):
        null = best_unit(units, shuffled_target(target, experiments, seed=seed), experiments, selection)
        assert abs(null.r_report) < 4 / np.sqrt(null.n_report)  # four standard errors of a null r
        assert abs(null.r_select) > 1.5 / np.sqrt(null.n_report)  # the max over 50 units is inflated
    with pytest.raises(ValueError, match="unknown shuffle mode"):
        shuffled_target(target, experiments, 0, mode="columns")


def test_exchanging_experiments_keeps_the_structure_shared_by_all_runs():
    experiments = np.repeat(np.arange(40), 10)
    position = np.tile(np.arange(10), 40).astype(float)  # a target that only depends on the position in the run
    target = position + np.random.default_rng(0).normal(0, 0.1, len(position))
    exchanged = shuffled_target(target, experiments, seed=1, mode="experiments")
    assert np.corrcoef(exchanged, position)[0, 1] > 0.99  # the structure survives
    assert np.corrcoef(shuffled_target(target, experiments, seed=1), position)[0, 1] < 0.2  # row shuffling kills it


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


def _entries(traj):
    """An index like a store's: a decision and an outcome entry per valid step."""
    e, c = np.nonzero(traj.valid)
    one = pd.DataFrame({"experiment": e, "column": c, "step": traj.step[e, c]})
    return pd.concat([one.assign(kind="decision"), one.assign(kind="outcome")]).sort_values(
        ["experiment", "column"], kind="stable").reset_index(drop=True)


def test_reference_targets_match_the_q_learner_at_each_entry():
    task = get_task("twostep")
    traj = run_agent(task, QLearner(alpha=0.3, beta=3.0), 4, 6, seed=0)
    index = _entries(traj)
    targets = reference_targets(task, traj, index, alpha=0.1, gamma=0.99)
    evaluation = QLearner(alpha=0.1, beta=1.0, gamma=0.99).evaluate(task, traj)
    out, dec = targets[targets.kind == "outcome"], targets[targets.kind == "decision"]
    np.testing.assert_allclose(out.td_error, evaluation.td_error[out.experiment, out.column])
    q = evaluation.q_values[dec.experiment, dec.column]
    np.testing.assert_allclose(dec.q_diff, q[:, 0] - q[:, 1])
    assert out.q_diff.isna().all() and dec.td_error.isna().all()  # each quantity only where it can be read
    second = (out.step == 1).to_numpy()  # at the alien the TD error is the reward minus the chosen alien's value
    q_alien = np.take_along_axis(evaluation.q_values[out.experiment, out.column],
                                 traj.action[out.experiment, out.column][:, None], 1)[:, 0]
    np.testing.assert_allclose(out.td_error[second], (out.reward - q_alien)[second])
    np.testing.assert_array_equal(out.last_reward, out.reward)  # an outcome token reveals its own reward
    first_decisions = dec[(dec.step == 0)]
    previous = traj.reward[first_decisions.experiment, first_decisions.column - 1]
    np.testing.assert_array_equal(first_decisions.last_reward[first_decisions.column > 0],
                                  previous[first_decisions.column > 0])  # a decision knows only the last outcome
    assert (first_decisions.last_reward[first_decisions.column == 0] == 0).all()
    assert covariates_of(targets).shape == (len(targets), 2)


def test_a_signed_target_split_over_two_relu_latents_is_read_by_their_pair():
    rng = np.random.default_rng(0)
    experiments = np.repeat(np.arange(60), 30)
    target = rng.normal(size=len(experiments))
    latents = rng.exponential(0.3, size=(len(experiments), 20))
    latents[:, 4] = np.maximum(0, target) + 0.1 * rng.random(len(target))
    latents[:, 9] = np.maximum(0, -target) + 0.1 * rng.random(len(target))
    selection = split_experiments(60, 0)
    single = best_unit(latents, target, experiments, selection)
    pair = best_pair(latents, target, experiments, selection)
    assert {pair.unit, pair.partner} == {4, 9} and pair.r_report > 0.95 > abs(single.r_report)


def test_per_experiment_learning_rates_are_used():
    task = get_task("twostep")
    traj = run_agent(task, QLearner(alpha=0.3, beta=3.0), 3, 5, seed=0)
    index = _entries(traj)
    alphas = np.array([0.1, 0.5, 0.9])
    mixed = reference_targets(task, traj, index, alpha=alphas)
    for i, alpha in enumerate(alphas):
        alone = reference_targets(task, traj, index, alpha=alpha)
        np.testing.assert_allclose(mixed.td_error[index.experiment == i], alone.td_error[index.experiment == i])
    with pytest.raises(ValueError, match="alpha"):
        reference_targets(task, traj, index, alpha=np.array([0.1, 0.2]))


def test_q_taken_is_the_value_a_td_error_is_measured_against_and_can_be_controlled_for():
    from tdsae.latents import covariates_of
    from tdsae.stats import residualize

    task = get_task("twostep")
    traj = run_agent(task, QLearner(alpha=0.3, beta=3.0), 20, 10, seed=1)
    targets = reference_targets(task, traj, _entries(traj), alpha=0.1, gamma=0.99)
    out, dec = targets[targets.kind == "outcome"], targets[targets.kind == "decision"]
    np.testing.assert_allclose(dec.q_taken, dec.q_chosen)  # at a decision, the value of the action taken
    np.testing.assert_allclose(out.q_taken.to_numpy(), dec.q_taken.to_numpy())  # the same step's, at its outcome
    second = out[out.step == 1]  # at the alien, td = r - Q(s, a): with r and Q controlled nothing is left
    plain = covariates_of(second)
    both = covariates_of(second, extra=("q_taken",))
    assert both.shape[1] == plain.shape[1] + 1
    assert np.abs(residualize(second.td_error.to_numpy(), plain)).max() > 0.1
    assert np.abs(residualize(second.td_error.to_numpy(), both)).max() < 1e-9
    with pytest.raises(ValueError, match="'q_tken'"):
        covariates_of(second, extra=("q_tken",))
