"""The three tasks: dynamics, seeding, the padded Trajectory, and both renderers."""

import numpy as np
import pytest

from tdsae.agents import QLearner, RandomAgent
from tdsae.tasks import (NOUNS, SPECIAL_TOKENS, GraphTask, GridWorldTask, TranscriptBuilder, TwoStepTask, get_task,
                         render_story_prompt, render_transcript, run_agent, story_action_strings, transcript_vocabulary)

TASK_NAMES = ["twostep", "gridworld", "graph"]


def play_random(task, n_experiments, n_episodes, seed):
    return run_agent(task, RandomAgent(), n_experiments, n_episodes, seed)


# --- Two-Step Task ---------------------------------------------------------------------------

def test_twostep_common_transitions_are_seventy_percent():
    traj = play_random(TwoStepTask(), 500, 30, seed=0)
    first = traj.step == 0
    common = traj.next_state[first] == traj.action[first] + 1
    assert abs(common.mean() - 0.7) < 0.02
    np.testing.assert_array_equal(traj.info["common"][first], common)
    assert set(traj.next_state[first]) == {1, 2} and set(traj.state[traj.step == 1]) == {1, 2}


def test_twostep_rewards_follow_drifting_probabilities():
    traj = play_random(TwoStepTask(), 500, 30, seed=1)
    probs = np.stack([traj.info[k] for k in ("reward_prob_xd", "reward_prob_xf",
                                             "reward_prob_yj", "reward_prob_yk")], axis=-1)
    assert probs.min() >= 0.25 and probs.max() <= 0.75
    np.testing.assert_array_equal(probs[:, 0::2], probs[:, 1::2])  # fixed within an episode
    per_episode = probs[:, 0::2]  # [n, episodes, 4]
    steps = np.abs(np.diff(per_episode, axis=1))
    assert (steps > 0).mean() > 0.5  # they drift
    assert 0.01 < steps.mean() < 0.03  # E|N(0, 0.025)| = 0.02, slightly less after clipping
    first = per_episode[:, 0]
    assert first.min() < 0.27 and first.max() > 0.73 and abs(first.mean() - 0.5) < 0.01
    assert np.array_equal(first.reshape(-1, 2, 2), traj.experiment_info["reward_probs"])
    # stage-2 rewards are Bernoulli draws of the chosen alien's probability
    second = traj.step == 1
    planet, alien = traj.state[second] - 1, traj.action[second]
    chosen = probs[second][np.arange(planet.size), 2 * planet + alien]
    assert abs((traj.reward[second] - chosen).mean()) < 0.01
    assert np.all(traj.reward[traj.step == 0] == 0)


# --- Graph Learning Task ---------------------------------------------------------------------

def test_graph_is_schapiro_community_graph():
    task = GraphTask()
    adj = task.adjacency
    assert adj.shape == (15, 15) and np.array_equal(adj, adj.T) and not adj.diagonal().any()
    assert np.all(adj.sum(axis=1) == 4)
    assert np.bincount(task.communities).tolist() == [5, 5, 5]
    same = task.communities[:, None] == task.communities[None, :]
    between = np.argwhere(np.triu(adj & ~same))
    assert len(between) == 3 and np.triu(adj & same).sum() == 27
    linked = {tuple(sorted(task.community_of(edge))) for edge in between}
    assert linked == {(0, 1), (1, 2), (0, 2)}  # a ring of communities
    boundary = np.unique(between)
    assert len(boundary) == 6 and np.all(np.bincount(task.community_of(boundary)) == 2)
    for c in range(3):  # the two boundary nodes of a community are not linked to each other
        b = boundary[task.community_of(boundary) == c]
        assert not adj[b[0], b[1]]
        inner = np.setdiff1d(np.arange(5 * c, 5 * c + 5), b)
        assert adj[np.ix_(inner, np.arange(5 * c, 5 * c + 5))].sum() == 3 * 4


def test_graph_walks_follow_edges_and_continue_across_segments():
    task = GraphTask(max_steps=20)
    traj = play_random(task, 50, 10, seed=2)
    assert traj.valid.all() and np.all(traj.action == -1) and np.all(traj.reward == 0)
    assert task.adjacency[traj.state, traj.next_state].all()
    np.testing.assert_array_equal(traj.state[:, 1:], traj.next_state[:, :-1])  # one unbroken walk
    assert np.array_equal(traj.done, traj.step == 19) and np.array_equal(traj.info["truncated"], traj.done)
    visits = np.bincount(traj.state.ravel(), minlength=15) / traj.state.size
    assert np.all(np.abs(visits - 1 / 15) < 0.02)  # a regular graph: uniform stationary distribution
    names = traj.experiment_info["node_names"]
    assert names.shape == (50, 15) and all(len(set(row)) == 15 and set(row) <= set(NOUNS) for row in names)
    assert len({tuple(row) for row in names}) == 50


# --- Grid World ------------------------------------------------------------------------------

def test_gridworld_walls_keep_state():
    moves = GridWorldTask(size=5).move_table()
    up, down, left, right = range(4)
    assert moves[0, up] == 0 and moves[0, left] == 0 and moves[0, right] == 1 and moves[0, down] == 5
    assert moves[24, down] == 24 and moves[24, right] == 24 and moves[24, up] == 19
    assert moves[12].tolist() == [7, 17, 11, 13]


def test_gridworld_goal_ends_episode_with_reward_and_pads():
    task = GridWorldTask()
    env = task.reset_experiments(20, seed=3)
    goal, start = env.experiment_info["goal"], env.experiment_info["start"]
    assert np.all(goal != start)
    for _ in range(3):
        state = env.start_episode()
        np.testing.assert_array_equal(state, start)
        while not env.episode_over:  # walk straight to the goal: rows first, then columns
            (r, c), (gr, gc) = np.divmod(env.state, 5), np.divmod(goal, 5)
            env.step(np.where(r > gr, 0, np.where(r < gr, 1, np.where(c > gc, 2, 3))))
    traj = env.to_trajectory()
    distance = np.abs(np.divmod(goal, 5)[0] - np.divmod(start, 5)[0]) + np.abs(goal % 5 - start % 5)
    np.testing.assert_array_equal(traj.valid.reshape(20, 3, 12).sum(axis=2), np.repeat(distance[:, None], 3, 1))
    np.testing.assert_array_equal(traj.episode_rewards(), np.ones((20, 3)))
    last = traj.valid & traj.done
    assert np.all(traj.next_state[last] == np.repeat(goal[:, None], traj.n_steps, 1)[last])
    assert np.all(traj.reward[traj.valid & ~traj.done] == 0) and not traj.info["truncated"].any()
    assert np.all(traj.state[~traj.valid] == -1) and np.all(traj.reward[~traj.valid] == 0)
    assert len(traj.to_frame()) == traj.valid.sum()


def test_gridworld_step_cap():
    task = GridWorldTask(max_steps=12)
    traj = play_random(task, 200, 10, seed=4)
    per_episode = traj.valid.reshape(200, 10, 12)
    assert np.all(per_episode.sum(axis=2) <= 12)
    assert np.array_equal(traj.done & traj.valid, (traj.next_state == traj.experiment_info["goal"][:, None])
                          | (traj.valid & (traj.step == 11)))
    capped = traj.info["truncated"]
    assert capped.any() and np.all(traj.step[capped] == 11) and np.all(traj.reward[capped] == 0)
    # each episode ends exactly once and nothing valid follows its end
    assert np.all((traj.done & traj.valid).reshape(200, 10, 12).sum(axis=2) == 1)
    assert np.all(np.diff(per_episode.astype(int), axis=2) <= 0)
    assert np.array_equal(traj.reward > 0, traj.done & ~capped & traj.valid)


# --- seeding, Trajectory, run_agent ----------------------------------------------------------

@pytest.mark.parametrize("name", TASK_NAMES)
def test_seeds_reproduce_and_differ(name):
    task = get_task(name)
    agent = QLearner(0.1, 5) if task.n_actions else RandomAgent()
    a = run_agent(task, agent, 10, 5, seed=7, n_random_episodes=2)
    b = run_agent(task, agent, 10, 5, seed=7, n_random_episodes=2)
    c = run_agent(task, agent, 10, 5, seed=8, n_random_episodes=2)
    small = run_agent(task, agent, 4, 5, seed=7, n_random_episodes=2)
    for field in ("state", "action", "reward", "next_state", "done", "valid"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        # an experiment does not depend on how many run beside it
        np.testing.assert_array_equal(getattr(a, field)[:4], getattr(small, field))
    assert not (np.array_equal(a.state, c.state) and np.array_equal(a.reward, c.reward))


@pytest.mark.parametrize("name", TASK_NAMES)
def test_a_batch_of_a_run_is_that_run_s_experiments_and_stacks_back_into_it(name):
    """Experiments 6..9 played apart (first=6) are experiments 6..9 of a run of 10, and Trajectory.concat
    of the batches is the whole run."""
    from tdsae.tasks.trajectory import Trajectory, make_rngs

    task = get_task(name)
    whole = task.reset_experiments(10, seed=3)
    later = task.reset_experiments(4, seed=3, first=6)
    for key, value in whole.experiment_info.items():
        np.testing.assert_array_equal(later.experiment_info[key], value[6:])
    assert make_rngs(3, 4, 1, first=6)[0].random() == make_rngs(3, 10, 1)[6].random()
    agent = RandomAgent()
    run = run_agent(task, agent, 10, 3, seed=3)
    parts = [run.select(np.arange(0, 6)), run.select(np.arange(6, 10))]
    stacked = Trajectory.concat(parts)
    for field in ("state", "action", "reward", "next_state", "done", "valid"):
        np.testing.assert_array_equal(getattr(stacked, field), getattr(run, field))
    with pytest.raises(ValueError, match="at least one"):
        Trajectory.concat([])
    other = run_agent(get_task("twostep" if name != "twostep" else "graph"), agent, 2, 3, seed=3)
    with pytest.raises(ValueError, match="cannot stack"):
        Trajectory.concat([run, other])
    with pytest.raises(ValueError, match="first"):
        make_rngs(3, 4, 1, first=-1)


def test_random_episodes_are_marked_and_frame_is_tidy():
    traj = run_agent(TwoStepTask(), QLearner(0.1, 5), 6, 10, seed=0, n_random_episodes=7)
    assert np.array_equal(traj.info["random_choice"], traj.episode < 7)
    frame = traj.to_frame()
    assert list(frame.columns[:8]) == ["experiment", "episode", "step", "state", "action", "reward",
                                       "next_state", "done"]
    assert len(frame) == 6 * 20 and {"common", "reward_prob_xd", "random_choice"} <= set(frame.columns)
    assert traj.n_experiments == 6 and traj.n_episodes == 10 and traj.episode_rewards().shape == (6, 10)
    np.testing.assert_array_equal(traj.episode_rewards().sum(axis=1), traj.reward.sum(axis=1))
    sub = traj.select([2, 2, 0])
    np.testing.assert_array_equal(sub.reward, traj.reward[[2, 2, 0]])
    assert sub.experiment_info["reward_probs"].shape == (3, 2, 2)


# --- transcripts -----------------------------------------------------------------------------

def play_with_builders(task, n_experiments, n_episodes, seed):
    """Play random actions while building transcripts piece by piece, as an LM player would."""
    env = task.reset_experiments(n_experiments, seed)
    builders = [TranscriptBuilder(task, env.experiment_info, e) for e in range(n_experiments)]
    rng = np.random.default_rng(seed)
    for _ in range(n_episodes):
        for e, state in enumerate(env.start_episode()):
            builders[e].start_episode(state)
        while not env.episode_over:
            actions = rng.integers(task.n_actions, size=n_experiments) if task.n_actions else None
            for e in np.nonzero(env.active)[0]:  # the decision is read at the last token
                assert builders[e].tokens[-1] == builders[e].state_tokens[env.state[e]]
                builders[e].add_action(env.state[e], -1 if actions is None else actions[e])
            out = env.step(actions)
            for e in np.nonzero(out.valid)[0]:
                builders[e].add_outcome(out.state[e], out.action[e], out.reward[e], out.next_state[e], out.done[e])
    return env.to_trajectory(), builders


@pytest.mark.parametrize("name", TASK_NAMES)
def test_transcript_incremental_equals_full(name):
    task = get_task(name)
    vocabulary = set(transcript_vocabulary())
    traj, builders = play_with_builders(task, 4, 6, seed=5)
    for e, builder in enumerate(builders):
        tokens, positions = render_transcript(traj, e)
        assert tokens == builder.tokens and tokens[0] == "<bos>"
        for key in ("decision", "outcome"):
            np.testing.assert_array_equal(positions[key], builder.positions()[key])
        assert set(tokens) <= vocabulary
        cols = np.nonzero(traj.valid[e])[0]
        assert len(positions["decision"]) == len(cols) == len(positions["outcome"])
        for d, o, t in zip(positions["decision"], positions["outcome"], cols):
            state, action = traj.state[e, t], traj.action[e, t]
            assert tokens[d] == builder.state_tokens[state]
            chosen = tokens[d + 1]
            assert chosen in builder.choice_tokens(state)
            if task.n_actions:
                assert chosen == task.transcript_action_tokens(state)[action] and o == d + 2
            else:
                assert chosen == builder.state_tokens[traj.next_state[e, t]] and o == d + 1
            paid = 1 if traj.reward[e, t] > 0 else 0
            if task.name == "twostep" and state > 0:  # the payout word names the alien
                assert tokens[o] == f"{chosen}{paid}"
            elif task.name == "gridworld":
                assert tokens[o] == f"gw:r{paid}"
            else:
                assert tokens[o] == builder.state_tokens[traj.next_state[e, t]]


def test_transcript_lengths_and_vocabulary():
    traj = play_random(TwoStepTask(), 2, 30, seed=0)
    tokens, positions = render_transcript(traj, 0)
    assert len(tokens) == 1 + 5 * 30 and tokens[1:6][0] == "ts:start"
    vocabulary = transcript_vocabulary()
    assert vocabulary == sorted(set(vocabulary)) and set(SPECIAL_TOKENS) <= set(vocabulary)
    assert all(" " not in token for token in vocabulary)
    prefixes = {token.split(":")[0] for token in vocabulary if token not in SPECIAL_TOKENS}
    assert prefixes == {"ts", "gw", "gl"}
    graph = play_random(GraphTask(), 1, 3, seed=0)
    assert len(render_transcript(graph, 0)[0]) == 1 + 1 + 60  # one token per node visited


# --- story prompts ---------------------------------------------------------------------------

def test_twostep_story_is_written_forward_and_each_prompt_extends_the_last():
    task = TwoStepTask()
    env = task.reset_experiments(1, seed=0)
    for action in ([0], [1], [0]):
        env.start_episode()
        env.step(action)
        env.step([1])
    traj = env.to_trajectory()
    prompts = [render_story_prompt(traj, 0, c, task) for c in range(6)]
    assert prompts[0].startswith("You will travel to foreign planets in search of treasures.")
    assert prompts[0].endswith("\nDay 1.\nQ: Do you want to take the spaceship to planet X or planet Y?\nA: Planet")
    planet = traj.next_state[0, 2]
    aliens = "J or K" if planet == 2 else "D or F"
    assert prompts[3].endswith(f"Day 2.\nQ: Do you want to take the spaceship to planet X or planet Y?\nA: Planet Y.\n"
                               f"You arrive at planet {'XY'[planet - 1]}.\n"
                               f"Q: Do you want to trade with alien {aliens}?\nA: Alien")
    paid = "treasures" if traj.reward[0, 3] > 0 else "junk"
    assert f"A: Alien {'DFJK'[2 * (planet - 1) + 1]}.\nYou received {paid}.\n\nDay 3." in prompts[4]
    assert all(later.startswith(earlier) for earlier, later in zip(prompts, prompts[1:]))  # append-only
    assert story_action_strings(task, state=0) == [" X", " Y"]
    assert story_action_strings(task, state=2) == [" J", " K"]


def test_gridworld_and_graph_stories():
    grid = GridWorldTask()
    traj = play_random(grid, 1, 2, seed=0)
    day_two = int(np.nonzero(traj.episode[0] == 1)[0][0])
    prompt = render_story_prompt(traj, 0, day_two, grid)
    start = grid.cell_name(traj.experiment_info["start"][0])
    assert f"\nDay 1. You start at {start}.\n" in prompt and f"\nDay 2. You start at {start}.\n" in prompt
    assert prompt.endswith(".\nMove") and ", and did not find the treasure.\n" in prompt
    assert story_action_strings(grid) == [" up", " down", " left", " right"]
    graph = GraphTask()
    walk = play_random(graph, 1, 1, seed=0)
    names = walk.experiment_info["node_names"][0]
    prompt = render_story_prompt(walk, 0, 19, graph)
    assert prompt.endswith(" " + names[walk.state[0, 19]] + ",") and prompt.split("Sequence:")[1].count(",") == 20
    assert story_action_strings(graph, walk, 0, 0) == [" " + n for n in names]
    with pytest.raises(ValueError, match="is not a valid step"):
        render_story_prompt(walk, 0, 20, graph)


# --- bad input -------------------------------------------------------------------------------

def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"unknown task 'x'; choose one of: graph, gridworld, twostep"):
        get_task("x")
    with pytest.raises(ValueError, match="p_common"):
        TwoStepTask(p_common=1.5)
    with pytest.raises(ValueError, match="prob_low"):
        TwoStepTask(prob_low=0.8)
    with pytest.raises(ValueError, match="size"):
        GridWorldTask(size=0)
    with pytest.raises(ValueError, match="max_steps"):
        GridWorldTask(max_steps=0)
    with pytest.raises(ValueError, match="max_steps"):
        GraphTask(max_steps=-3)
    with pytest.raises(ValueError, match="n_experiments"):
        TwoStepTask().reset_experiments(0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        TwoStepTask().reset_experiments(2, seed=-1)
    with pytest.raises(ValueError, match="n_episodes"):
        run_agent(TwoStepTask(), RandomAgent(), 2, 0, seed=0)
    env = TwoStepTask().reset_experiments(2, seed=0)
    with pytest.raises(ValueError, match="start_episode"):
        env.step([0, 0])
    env.start_episode()
    with pytest.raises(ValueError, match="illegal actions"):
        env.step([0, 2])
    with pytest.raises(ValueError, match="shape"):
        env.step([0, 1, 0])
    env.step([0, 1])
    with pytest.raises(ValueError, match="still running"):
        env.start_episode()


def test_history_before_hides_the_future_only():
    from tdsae.agents import RandomAgent
    from tdsae.tasks import get_task, run_agent

    traj = run_agent(get_task("twostep"), RandomAgent(), 3, 5, seed=0)
    history = traj.history_before(4)
    assert history.valid[:, :4].all() and not history.valid[:, 4:].any()
    assert traj.valid.all() and (history.action == traj.action).all()
