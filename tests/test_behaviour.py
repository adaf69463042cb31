"""Two-Step stay probabilities: hand-checked on a tiny trajectory, and the classic signatures of
model-free and model-based agents."""

import numpy as np
import pytest

from tdsae.agents import ModelBasedLearner, QLearner, WinStayLoseShift
from tdsae.behaviour import first_stage_table, stay_effects, stay_probabilities
from tdsae.tasks import get_task, run_agent


def test_stay_is_read_from_consecutive_first_stage_actions():
    task = get_task("twostep")
    traj = run_agent(task, QLearner(alpha=0.3, beta=3.0, gamma=0.99), 2, 6, seed=0)
    table = first_stage_table(traj)
    first = traj.action[:, ::2]
    expected = (first[:, 1:] == first[:, :-1]).ravel()
    assert len(table) == 2 * 5  # the last episode has no next choice
    np.testing.assert_array_equal(table.stay.to_numpy().astype(bool), expected)
    np.testing.assert_array_equal(table.rewarded, (traj.reward[:, 1::2][:, :-1] > 0).ravel())


def test_random_episodes_are_dropped_but_the_first_learned_choice_counts():
    traj = run_agent(get_task("twostep"), QLearner(alpha=0.3, beta=3.0, gamma=0.99), 3, 10, seed=1,
                     n_random_episodes=4)
    table = first_stage_table(traj, n_random_episodes=4)
    assert table.episode.min() == 3  # stay after episode 4 is the first model choice's
    assert table.episode.max() == 8


def effects_of(agent):
    traj = run_agent(get_task("twostep"), agent, 60, 80, seed=2)
    return stay_effects(stay_probabilities(traj)).mean()


def test_signatures_of_td0_model_based_and_win_stay_lose_shift():
    # TD(0) updates the first-stage value from the second-stage value, not from the reward, so a
    # single reward hardly moves the next first choice: flat bars. A planner credits the other ship
    # after a rare transition (the bars cross); win-stay-lose-shift follows the reward alone.
    td0 = effects_of(QLearner(alpha=0.5, beta=8.0, gamma=0.99))
    planner = effects_of(ModelBasedLearner(alpha=0.5, beta=8.0, gamma=0.99))
    wsls = effects_of(WinStayLoseShift(epsilon=0.1))
    assert abs(td0["reward_effect"]) < 0.1 and abs(td0["interaction"]) < 0.15
    assert planner["interaction"] > 0.4 and abs(planner["reward_effect"]) < 0.1
    assert wsls["reward_effect"] > 0.7 and abs(wsls["interaction"]) < 0.15


def test_stay_probabilities_need_a_twostep_trajectory():
    traj = run_agent(get_task("gridworld"), QLearner(alpha=0.3, beta=3.0, gamma=0.99), 2, 2, seed=0)
    with pytest.raises(ValueError, match="Two-Step"):
        stay_probabilities(traj)
