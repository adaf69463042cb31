"""Reference agents: hand-computed TD errors, learning, likelihoods, and replay of trajectories."""

import math

import numpy as np
import pytest

from tdsae.agents import (CopyBestEpisode, HybridLearner, ModelBasedLearner, QLearner, RandomAgent, SRLearner,
                          WinStayLoseShift, get_agent, softmax_legal)
from tdsae.tasks import GraphTask, GridWorldTask, Trajectory, TwoStepTask, get_task, run_agent


def make_trajectory(task, steps, max_steps):
    """One experiment from (episode, step, state, action, reward, next_state, done) rows."""
    rows = np.array(steps, dtype=float)
    n_steps = int(rows[:, 0].max() + 1) * max_steps
    arrays = {k: np.full((1, n_steps), v) for k, v in
              [("state", -1), ("action", -1), ("next_state", -1), ("reward", 0.0)]}
    done, valid = np.zeros((1, n_steps), bool), np.zeros((1, n_steps), bool)
    for episode, step, state, action, reward, next_state, end in rows:
        t = int(episode) * max_steps + int(step)
        arrays["state"][0, t], arrays["action"][0, t] = state, action
        arrays["reward"][0, t], arrays["next_state"][0, t] = reward, next_state
        done[0, t], valid[0, t] = end, True
    columns = np.arange(n_steps)[None]
    return Trajectory(task=task, episode=columns // max_steps, step=columns % max_steps,
                      state=arrays["state"].astype(int), action=arrays["action"].astype(int),
                      reward=arrays["reward"], next_state=arrays["next_state"].astype(int),
                      done=done, valid=valid)


# three two-step episodes: (episode, step, state, action, reward, next_state, done)
TWOSTEP_ROWS = [
    (0, 0, 0, 0, 0, 1, 0), (0, 1, 1, 1, 1, 0, 1),  # spaceship X -> planet X, alien F pays
    (1, 0, 0, 0, 0, 1, 0), (1, 1, 1, 1, 0, 0, 1),  # the same path, alien F does not pay
    (2, 0, 0, 1, 0, 1, 0), (2, 1, 1, 1, 1, 0, 1),  # spaceship Y -> planet X (rare), F pays
]


def test_qlearner_td_errors_and_values_by_hand():
    traj = make_trajectory("twostep", TWOSTEP_ROWS, 2)
    ev = QLearner(alpha=0.5, beta=1.0, gamma=0.9).evaluate(TwoStepTask(), traj)
    # alpha = 0.5, gamma = 0.9, Q starts at 0:
    # 1: d = 0 + .9*max Q(1,.)=0 - Q(0,0)=0 = 0
    # 2: d = 1 - Q(1,1)=0 = 1                        -> Q(1,1) = .5
    # 3: d = .9*.5 - Q(0,0)=0 = .45                   -> Q(0,0) = .225
    # 4: d = 0 - Q(1,1)=.5 = -.5                      -> Q(1,1) = .25
    # 5: d = .9*.25 - Q(0,1)=0 = .225                 -> Q(0,1) = .1125
    # 6: d = 1 - Q(1,1)=.25 = .75                     -> Q(1,1) = .625
    np.testing.assert_allclose(ev.td_error[0], [0, 1, 0.45, -0.5, 0.225, 0.75])
    expected_q = [[0, 0], [0, 0], [0, 0], [0, 0.5], [0.225, 0], [0, 0.25]]
    np.testing.assert_allclose(ev.q_values[0], expected_q)
    p_second = 1 / (1 + math.exp(0.225))  # softmax with beta 1 over Q(0,.) = [.225, 0], chose 1
    assert ev.p_action[0, 4] == pytest.approx(p_second)
    assert ev.p_action[0, 3] == pytest.approx(math.exp(0.5) / (1 + math.exp(0.5)))
    assert ev.loglik[0] == pytest.approx(np.log(ev.p_action[0]).sum())


def test_sr_td_error_vector_by_hand():
    # walk 0 -> 1 -> 2 -> 1 -> 2 (edges of the community graph), alpha = 0.5, gamma = 0.9, M = I
    rows = [(0, 0, 0, -1, 0, 1, 0), (0, 1, 1, -1, 0, 2, 0), (0, 2, 2, -1, 0, 1, 0), (0, 3, 1, -1, 0, 2, 0)]
    traj = make_trajectory("graph", rows, 20)
    ev = SRLearner(alpha=0.5, gamma=0.9).evaluate(GraphTask(), traj)
    e = np.eye(15)
    # 1: e0 + .9 e1 - e0 = .9 e1                        -> M(0) = e0 + .45 e1
    # 2: e1 + .9 e2 - e1 = .9 e2                        -> M(1) = e1 + .45 e2
    # 3: e2 + .9 M(1) - M(2) = .9 e1 + .405 e2          -> M(2) = .45 e1 + 1.2025 e2
    # 4: e1 + .9 M(2) - M(1) = .405 e1 + .63225 e2
    expected = np.stack([0.9 * e[1], 0.9 * e[2], 0.9 * e[1] + 0.405 * e[2], 0.405 * e[1] + 0.63225 * e[2]])
    np.testing.assert_allclose(ev.extras["td_error_vector"][0, :4], expected, atol=1e-12)
    np.testing.assert_allclose(ev.td_error[0, :4], [0.9, 0.9, 0.9, 0.63225])  # the entry at s'
    np.testing.assert_allclose(ev.extras["td_error_norm"][0, :4], np.linalg.norm(expected, axis=1))
    assert np.isnan(ev.td_error[0, 4:]).all()
    # the prediction at step 4 (from node 1) is M(1) without node 1 itself: all mass on node 2
    assert ev.p_action[0, 3] == pytest.approx(1.0)
    np.testing.assert_allclose(ev.probs[0, 0], np.where(np.arange(15) == 0, 0, 1 / 14))


def test_sr_learns_communities():
    task = GraphTask()
    agent = SRLearner()
    run_agent(task, agent, 20, 30, seed=0)
    same = task.communities[:, None] == task.communities[None, :]
    off = ~np.eye(15, dtype=bool)
    m = agent.m.mean(axis=0)
    assert m[same & off].mean() > 2 * m[~same].mean()


@pytest.mark.parametrize("name", ["twostep", "gridworld"])
def test_qlearner_beats_random(name):
    task = get_task(name)
    learned = run_agent(task, QLearner(alpha=0.1, beta=10.0), 100, 30, seed=11).episode_rewards().mean(axis=1)
    chance = run_agent(task, RandomAgent(), 100, 30, seed=11).episode_rewards().mean(axis=1)
    gain = learned - chance  # paired: the same seed gives both agents the same reward schedule
    low = gain.mean() - 1.96 * gain.std(ddof=1) / np.sqrt(gain.size)
    assert gain.mean() > 0 and low > 0


AGENT_CASES = [
    ("twostep", QLearner(0.3, 4.0)), ("gridworld", QLearner(0.3, 4.0)),
    ("twostep", ModelBasedLearner(0.3, 4.0)), ("gridworld", ModelBasedLearner(0.3, 40.0)),
    ("twostep", HybridLearner(0.3, 4.0, 0.5)), ("twostep", WinStayLoseShift(0.2)),
    ("gridworld", WinStayLoseShift(0.2)), ("twostep", CopyBestEpisode(0.2)),
    ("gridworld", CopyBestEpisode(0.2)), ("twostep", RandomAgent()), ("graph", SRLearner()),
    ("graph", RandomAgent()),
]


@pytest.mark.parametrize("name,agent", AGENT_CASES)
def test_evaluate_replays_play(name, agent):
    """Probabilities sum to 1, and replaying the agent's own game gives what it had while playing."""
    task = get_task(name)
    n, n_episodes = 8, 12
    env = task.reset_experiments(n, seed=3)
    agent.reset(n, task)
    rng = np.random.default_rng(0)
    n_steps = n_episodes * task.max_steps
    played = {"probs": np.full((n, n_steps, agent.n_choices(task)), np.nan),
              "q": np.full((n, n_steps, task.n_actions), np.nan), "td": np.full((n, n_steps), np.nan)}
    for _ in range(n_episodes):
        env.start_episode()
        while not env.episode_over:
            t = env.episode * task.max_steps + env.t
            probs, values = agent.choice_probs(env.state), agent.q_values(env.state)
            actions = None
            if task.n_actions:
                actions = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
            out = env.step(actions)
            delta = agent.update(out)
            played["probs"][out.valid, t] = probs[out.valid]
            if values is not None:
                played["q"][out.valid, t] = values[out.valid]
            if delta is not None:
                played["td"][:, t] = delta
    traj = env.to_trajectory()
    ev = agent.evaluate(task, traj)
    valid = traj.valid
    np.testing.assert_allclose(ev.probs[valid].sum(axis=1), 1.0)
    assert np.all(np.isnan(ev.probs[~valid])) and np.all(np.isnan(ev.p_action[~valid]))
    np.testing.assert_allclose(ev.probs, played["probs"], equal_nan=True)
    if ev.q_values is not None:
        np.testing.assert_allclose(ev.q_values, played["q"], equal_nan=True)
    if ev.td_error is not None:
        np.testing.assert_allclose(ev.td_error, played["td"], equal_nan=True)
        assert np.isfinite(ev.td_error[valid]).mean() > 0.4
    assert np.all(np.isfinite(ev.loglik)) and np.all(ev.loglik <= 0)
    later = traj.episode >= 2  # the fitter's lean replay must score exactly what evaluate scores
    np.testing.assert_allclose(agent.loglik(task, traj), ev.loglik, rtol=1e-12)
    np.testing.assert_allclose(agent.loglik(task, traj, later), agent.evaluate(task, traj, later).loglik, rtol=1e-12)


def test_vectorised_parameters_match_separate_runs():
    task = TwoStepTask()
    traj = run_agent(task, RandomAgent(), 5, 20, seed=1)
    alphas, betas = np.array([0.05, 0.2, 0.5]), np.array([1.0, 3.0, 8.0])
    tiled = traj.select(np.repeat(np.arange(5), 3))  # rows: experiment-major, then setting
    ev = QLearner(alpha=np.tile(alphas, 5), beta=np.tile(betas, 5)).evaluate(task, tiled)
    for k in range(3):
        single = QLearner(alpha=alphas[k], beta=betas[k]).evaluate(task, traj)
        np.testing.assert_allclose(ev.loglik[k::3], single.loglik)
        np.testing.assert_allclose(ev.td_error[k::3], single.td_error)
    counted = QLearner(0.1, 3.0).evaluate(task, traj, choice_mask=traj.episode >= 7)
    full = QLearner(0.1, 3.0).evaluate(task, traj)
    np.testing.assert_allclose(counted.loglik, np.log(full.p_action[:, 14:]).sum(axis=1))


def test_hybrid_spans_model_free_and_model_based():
    task = TwoStepTask()
    traj = run_agent(task, RandomAgent(), 10, 20, seed=2)
    free = QLearner(0.3, 4.0).evaluate(task, traj).probs
    based = ModelBasedLearner(0.3, 4.0).evaluate(task, traj).probs
    np.testing.assert_allclose(HybridLearner(0.3, 4.0, w=0.0).evaluate(task, traj).probs, free)
    np.testing.assert_allclose(HybridLearner(0.3, 4.0, w=1.0).evaluate(task, traj).probs, based)
    assert not np.allclose(free, based)


def test_model_based_values_by_hand():
    # two-step: alien F on planet X paid once; alpha = 0.5, gamma = 0.9 -> Q2[X, F] = 0.5
    traj = make_trajectory("twostep", TWOSTEP_ROWS[:2] + [(1, 0, 0, 0, 0, 2, 0)], 2)
    ev = ModelBasedLearner(alpha=0.5, beta=1.0, gamma=0.9).evaluate(TwoStepTask(), traj)
    # spaceship X: .9 * (.7 * .5 + .3 * 0) = .315; spaceship Y: .9 * (.3 * .5) = .135
    np.testing.assert_allclose(ev.q_values[0, 2], [0.315, 0.135])
    np.testing.assert_allclose(ev.td_error[0, :2], [np.nan, 1.0])
    # grid world: the goal (cell 12) paid once with alpha = 1, so R[12] = 1
    grid = GridWorldTask()
    traj = make_trajectory("gridworld", [(0, 0, 7, 1, 1, 12, 1), (1, 0, 0, 3, 0, 1, 0)], 12)
    ev = ModelBasedLearner(alpha=1.0, beta=1.0, gamma=0.9).evaluate(grid, traj)
    # V(cell at distance d from the goal) = .9**(d - 1): the step onto the goal pays 1.
    # From cell 0 (distance 4): right/down reach distance 3 -> .9 * .9**2; up/left stay -> .9 * .9**3
    np.testing.assert_allclose(ev.q_values[0, 12], [0.9**4, 0.9**3, 0.9**4, 0.9**3])


def test_heuristics_by_hand():
    task = TwoStepTask()
    traj = make_trajectory("twostep", TWOSTEP_ROWS + [(3, 0, 0, 1, 0, 2, 0), (3, 1, 2, 0, 0, 0, 1)], 2)
    wsls = WinStayLoseShift(epsilon=0.2).evaluate(task, traj)
    # before episode 1 (previous rewarded, action 0 at the start): stay with .8 + .1
    np.testing.assert_allclose(wsls.probs[0, 2], [0.9, 0.1])
    # before episode 2 (previous unrewarded, action 0): shift
    np.testing.assert_allclose(wsls.probs[0, 4], [0.1, 0.9])
    np.testing.assert_allclose(wsls.probs[0, 0], [0.5, 0.5])  # nothing remembered yet
    copy = CopyBestEpisode(epsilon=0.2).evaluate(task, traj)
    # best episodes so far: 0 (reward 1) then 2 (reward 1, more recent) -> copy spaceship Y
    np.testing.assert_allclose(copy.probs[0, 4], [0.9, 0.1])
    np.testing.assert_allclose(copy.probs[0, 6], [0.1, 0.9])
    np.testing.assert_allclose(copy.probs[0, 7], [0.5, 0.5])  # planet Y never visited
    assert copy.q_values is None and copy.td_error is None


def test_softmax_legal_masks_and_normalises():
    probs = softmax_legal(np.array([[1.0, 2.0, 3.0], [5.0, 0.0, 0.0]]), np.array([2.0, 0.0]),
                          np.array([[True, False, True], [True, True, False]]))
    np.testing.assert_allclose(probs, [[1 / (1 + np.exp(4)), 0, 1 / (1 + np.exp(-4))], [0.5, 0.5, 0]])


def test_bad_agent_input_raises():
    with pytest.raises(ValueError, match="alpha"):
        QLearner(alpha=1.5)
    with pytest.raises(ValueError, match="beta"):
        QLearner(beta=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        WinStayLoseShift(epsilon=2.0)
    with pytest.raises(ValueError, match="w must"):
        HybridLearner(w=-0.1)
    with pytest.raises(ValueError, match="gamma"):
        SRLearner(gamma=np.nan)
    with pytest.raises(ValueError, match="3 values but there are 4"):
        QLearner(alpha=[0.1, 0.2, 0.3]).reset(4, TwoStepTask())
    with pytest.raises(ValueError, match="graph"):
        QLearner().reset(2, GraphTask())
    with pytest.raises(ValueError, match="gridworld"):
        HybridLearner().reset(2, GridWorldTask())
    with pytest.raises(ValueError, match="unknown agent 'td'"):
        get_agent("td")
