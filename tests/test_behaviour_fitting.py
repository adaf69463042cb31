"""Fitting: hand-computed likelihoods, masked random episodes, optimum, recovery, BIC comparison."""

import math

import numpy as np
import pandas as pd
import pytest

from tdsae.agents import QLearner
from tdsae.behaviour import (MODELS, ParamSpec, compare_models, compute_nll, count_choices, fit_model, fit_models,
                             get_model, recover_models, recover_parameters, simulate_subjects)
from tdsae.tasks import GraphTask, GridWorldTask, Trajectory, TwoStepTask

# three two-step episodes: (episode, step, state, action, reward, next_state, done)
TWOSTEP_ROWS = [
    (0, 0, 0, 0, 0, 1, 0), (0, 1, 1, 1, 1, 0, 1),  # spaceship X -> planet X, alien F pays
    (1, 0, 0, 0, 0, 1, 0), (1, 1, 1, 1, 0, 0, 1),  # the same path, alien F does not pay
    (2, 0, 0, 1, 0, 1, 0), (2, 1, 1, 1, 1, 0, 1),  # spaceship Y -> planet X (rare), F pays
]


def make_trajectory(rows, max_steps=2, task="twostep"):
    """One experiment from (episode, step, state, action, reward, next_state, done) rows."""
    n_steps = (max(r[0] for r in rows) + 1) * max_steps
    state, action, next_state = (np.full((1, n_steps), -1) for _ in range(3))
    reward, done, valid = np.zeros((1, n_steps)), np.zeros((1, n_steps), bool), np.zeros((1, n_steps), bool)
    for episode, step, s, a, r, s2, end in rows:
        t = episode * max_steps + step
        state[0, t], action[0, t], reward[0, t], next_state[0, t] = s, a, r, s2
        done[0, t], valid[0, t] = bool(end), True
    columns = np.arange(n_steps)[None]
    return Trajectory(task=task, episode=columns // max_steps, step=columns % max_steps, state=state,
                      action=action, reward=reward, next_state=next_state, done=done, valid=valid)


def log_sigmoid(x):
    return -math.log1p(math.exp(-x))


def test_qlearning_nll_matches_hand_computation():
    traj = make_trajectory(TWOSTEP_ROWS)
    nll = compute_nll(TwoStepTask(), traj, "qlearning", {"alpha": 0.5, "beta": 1.0}, n_random_episodes=1)
    # gamma 0.99, alpha 0.5; episode 0 is random: not counted, but it teaches Q(1, 1) = 0.5.
    # episode 1: Q(0, .) = [0, 0], chose 0: p = 1/2; then Q(0, 0) = 0.5 * 0.99 * 0.5 = 0.2475
    #            Q(1, .) = [0, .5], chose 1: p = sigmoid(.5); no pay: Q(1, 1) = 0.25
    # episode 2: Q(0, .) = [.2475, 0], chose 1: p = sigmoid(-.2475)
    #            Q(1, .) = [0, .25], chose 1: p = sigmoid(.25)
    expected = -(math.log(0.5) + log_sigmoid(0.5) + log_sigmoid(-0.2475) + log_sigmoid(0.25))
    assert nll[0] == pytest.approx(expected, rel=1e-12)


def test_heuristic_and_random_nll_match_hand_computation():
    traj, eps = make_trajectory(TWOSTEP_ROWS), 0.2
    # episode 0 (random, paid) sets "stay" at both states; episode 1 stays (p = 1 - eps/2 each) and
    # loses; episode 2 shifts at the start (p = 1 - eps/2) but stays with alien F (p = eps/2)
    expected = -(3 * math.log(1 - eps / 2) + math.log(eps / 2))
    nll = compute_nll(TwoStepTask(), traj, "wsls", {"epsilon": eps}, n_random_episodes=1)
    assert nll[0] == pytest.approx(expected, rel=1e-12)
    assert compute_nll(TwoStepTask(), traj, "random", n_random_episodes=1)[0] == pytest.approx(4 * math.log(2))


def test_nll_is_vectorised_over_parameter_settings():
    task = TwoStepTask()
    traj = simulate_subjects(task, "qlearning", {"alpha": np.array([0.3, 0.6]), "beta": np.array([3.0, 6.0])},
                             n_episodes=12, seed=1, n_random_episodes=3)
    alphas, betas = np.array([0.1, 0.5, 0.9]), np.array([1.0, 4.0, 20.0])
    rows = np.array([0, 1, 1])
    batch = compute_nll(task, traj.select(rows), "qlearning", {"alpha": alphas, "beta": betas}, 3)
    one_by_one = [compute_nll(task, traj.select([r]), "qlearning", {"alpha": a, "beta": b}, 3)[0]
                  for r, a, b in zip(rows, alphas, betas)]
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-12)


def test_random_episodes_drive_learning_but_do_not_count():
    task = TwoStepTask()
    params = {"alpha": np.full(5, 0.4), "beta": np.full(5, 5.0)}
    traj = simulate_subjects(task, "qlearning", params, n_episodes=30, seed=2, n_random_episodes=7)
    np.testing.assert_array_equal(count_choices(traj, 7), 46)  # 2 choices x 23 learning episodes
    np.testing.assert_allclose(compute_nll(task, traj, "random", n_random_episodes=7), 46 * math.log(2))
    # the likelihood sums exactly the learning episodes' choice log-probabilities
    agent = MODELS["qlearning"]
    ev = QLearner(alpha=0.4, beta=5.0, gamma=0.99).evaluate(task, traj)
    by_hand = -np.where(traj.episode >= 7, np.log(ev.p_action), 0.0).sum(axis=1)
    np.testing.assert_allclose(compute_nll(task, traj, agent.name, params, 7), by_hand, rtol=1e-12)
    # cutting the random episodes off changes the values the later choices are scored with
    cut = 7 * task.max_steps
    later = Trajectory(task="twostep", episode=traj.episode[:, cut:] - 7,
                       **{k: getattr(traj, k)[:, cut:] for k in
                          ("step", "state", "action", "reward", "next_state", "done", "valid")})
    unlearned = compute_nll(task, later, "qlearning", params, n_random_episodes=0)
    assert np.all(np.abs(unlearned - by_hand) > 1e-6)


def test_fit_reaches_the_global_optimum_of_a_dense_grid():
    task, spec = TwoStepTask(), get_model("qlearning")
    traj = simulate_subjects(task, "qlearning", {"alpha": np.array([0.2, 0.7]), "beta": np.array([2.0, 4.0])},
                             seed=3)
    fit = fit_model(task, traj, "qlearning", seed=0)
    axis = np.linspace(0, 1, 101)
    units = np.array(np.meshgrid(axis, axis)).reshape(2, -1).T  # [101 * 101, 2] unit coordinates
    values = {p.name: np.tile(p.from_unit(units[:, i]), 2) for i, p in enumerate(spec.params)}
    dense = compute_nll(task, traj.select(np.repeat([0, 1], len(units))), "qlearning", values).reshape(2, -1)
    assert np.all(fit.nll <= dense.min(axis=1) + 1e-9)
    again = compute_nll(task, traj, "qlearning", fit.params)  # the reported NLL is the fitted point's
    np.testing.assert_allclose(fit.nll, again, rtol=1e-12)
    assert fit.n_unfinished == 0


def test_fit_recovers_known_alpha_and_beta():
    # Two-Step Task with 200 episodes (386 counted choices per subject): the paper's 46 choices are
    # too few (report). Pearson r for alpha; Spearman for beta, since one fit on the alpha -> 0,
    # beta -> large ridge can wreck a Pearson r of 25 subjects (seed 0 here gives 0.35).
    res = recover_parameters(TwoStepTask(), ranges={"alpha": (0.05, 0.8), "beta": (1.0, 5.0)},
                             n_subjects=25, n_episodes=200, seed=1)
    assert res.r["alpha"] > 0.8
    assert res.rho["beta"] > 0.75
    assert list(res.table.columns) == ["true_alpha", "fit_alpha", "true_beta", "fit_beta"]


@pytest.mark.parametrize("generator, params", [
    ("qlearning", {"alpha": 0.3, "beta": 5.0}),
    ("wsls", {"epsilon": 0.1}),
])
def test_model_comparison_picks_the_generating_model(generator, params):
    task, n = TwoStepTask(), 20
    traj = simulate_subjects(task, generator, {k: np.full(n, v) for k, v in params.items()}, seed=4)
    fits = fit_models(task, traj, seed=0)
    table = compare_models(fits)
    assert table.loc[0, "model"] == generator
    assert table.loc[0, "delta_bic"] == 0.0 and table["delta_bic"].iloc[1] > 10.0
    assert table["n_best"].sum() == n
    assert set(table["model"]) == {"qlearning", "model_based", "hybrid", "wsls", "copy_best", "random"}


def test_model_recovery_attributes_simulated_data_to_their_generator():
    task, n = TwoStepTask(), 20
    fits = {"qlearning": fit_model(task, simulate_subjects(task, "qlearning", {"alpha": np.full(n, 0.4),
                                                                              "beta": np.full(n, 6.0)}, seed=1),
                                   "qlearning"),
            "wsls": fit_model(task, simulate_subjects(task, "wsls", {"epsilon": np.full(n, 0.1)}, seed=2), "wsls")}
    table = recover_models(task, fits, seed=3)
    grid = table.pivot(index="generator", columns="fitted", values="fraction")
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    assert grid.loc["qlearning", "qlearning"] > 0.7 and grid.loc["wsls", "wsls"] > 0.9
    with pytest.raises(ValueError, match="copy_best"):
        recover_models(task, fits, ["qlearning", "copy_best"])


def test_bic_and_comparison_table_by_hand():
    task = TwoStepTask()
    traj = simulate_subjects(task, "wsls", {"epsilon": np.full(6, 0.3)}, seed=5)
    fits = fit_models(task, traj, ["wsls", "random"])
    wsls = fits["wsls"]
    np.testing.assert_allclose(wsls.bic, math.log(46) + 2 * wsls.nll)
    np.testing.assert_allclose(fits["random"].bic, 2 * 6 * 46 * math.log(2) / 6)
    table = compare_models(fits).set_index("model")
    assert table.loc["wsls", "total_bic"] == pytest.approx(wsls.bic.sum())
    assert table.loc["random", "n_params"] == 0
    best = np.where(wsls.bic < fits["random"].bic, "wsls", "random")
    assert table.loc["wsls", "n_best"] == (best == "wsls").sum()
    frame = wsls.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == [
        "subject", "model", "epsilon", "nll", "n_choices", "bic"]


def test_fit_is_deterministic_under_a_seed():
    task = GridWorldTask()
    traj = simulate_subjects(task, "qlearning", {"alpha": np.full(3, 0.3), "beta": np.full(3, 5.0)},
                             n_episodes=8, seed=6, n_random_episodes=3)
    a = fit_model(task, traj, "qlearning", n_random_episodes=3, seed=11)
    b = fit_model(task, traj, "qlearning", n_random_episodes=3, seed=11)
    for name in ("alpha", "beta"):
        np.testing.assert_array_equal(a.params[name], b.params[name])
    np.testing.assert_array_equal(a.nll, b.nll)
    r1 = recover_parameters(TwoStepTask(), n_subjects=4, seed=7)
    r2 = recover_parameters(TwoStepTask(), n_subjects=4, seed=7)
    pd.testing.assert_frame_equal(r1.table, r2.table)


def test_param_scales_round_trip():
    for spec in (ParamSpec("a", 1e-3, 0.999, "logit"), ParamSpec("b", 0.01, 50.0, "log"), ParamSpec("c", 0, 1)):
        u = np.linspace(0, 1, 7)
        values = spec.from_unit(u)
        assert values[0] == pytest.approx(spec.low) and values[-1] == pytest.approx(spec.high)
        np.testing.assert_allclose(spec.to_unit(values), u, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    task = TwoStepTask()
    traj = make_trajectory(TWOSTEP_ROWS)
    with pytest.raises(ValueError, match="unknown model 'td'.*copy_best.*qlearning"):
        fit_model(task, traj, "td")
    with pytest.raises(ValueError, match="unknown model"):
        fit_models(task, traj, ["qlearning", "td"])
    with pytest.raises(ValueError, match="no choices after the first 3"):
        fit_model(task, traj, "qlearning", n_random_episodes=3)
    with pytest.raises(ValueError, match="takes parameters"):
        compute_nll(task, traj, "qlearning", {"alpha": 0.5})
    with pytest.raises(ValueError, match="supports tasks"):
        fit_model(GridWorldTask(), traj, "hybrid")
    with pytest.raises(ValueError, match="no choices to fit"):
        fit_model(GraphTask(), traj, "random")
    with pytest.raises(ValueError, match="ParamSpec|scale"):
        ParamSpec("a", 0, 1, "cubic")
