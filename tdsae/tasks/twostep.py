"""The Two-Step Task (Daw et al., 2011) in the CogBench wording (Binz & Schulz, 2023).

States: 0 = start, 1 = planet X, 2 = planet Y. At the start, action a takes the spaceship to
planet a + 1 with probability p_common (0.7) and to the other planet otherwise. On planet X the
actions trade with alien D or F, on planet Y with J or K; an alien pays treasure (reward 1) with
its own probability. The four probabilities start in U(0.25, 0.75) per experiment and after every
episode take a Gaussian step (sd 0.025), clipped to [0.25, 0.75]. Whether Demircan et al. used
exactly this variant is not verified (PAPERS.md §1.4.1); it is the project's reconstruction.

Recorded per step: next_state after the second stage is 0 (the next episode's start; done is
True, so nothing bootstraps from it); info["common"] flags a common transition at first-stage
rows (False at second-stage rows); info["reward_prob_xd" .. "reward_prob_yk"] hold the four
reward probabilities in force during the episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import check_probability

PLANETS = ("X", "Y")
ALIENS = (("D", "F"), ("J", "K"))  # aliens of planet X, of planet Y
PROB_KEYS = ("reward_prob_xd", "reward_prob_xf", "reward_prob_yj", "reward_prob_yk")

COVER_STORY = (
    "You will travel to foreign planets in search of treasures.\n"
    "When you visit a planet, you can choose an alien to trade with.\n"
    "The chance of getting treasures from these aliens changes over time.\n"
    "Your goal is to maximize the number of received treasures.\n"
)


@dataclass(frozen=True)
class TwoStepTask(Task):
    """Two-step task; all four stage actions are legal in their states."""

    p_common: float = 0.7  # probability that spaceship X goes to planet X (and Y to Y)
    drift_sd: float = 0.025  # sd of the Gaussian step of each reward probability per episode
    prob_low: float = 0.25  # lower bound of the reward probabilities (initial draw and clipping)
    prob_high: float = 0.75  # upper bound of the reward probabilities

    name = "twostep"
    n_states = 3
    n_actions = 2
    max_steps = 2
    action_names = ("first", "second")  # spaceship X / alien D / alien J, and Y / F / K
    state_names = ("start", "planet X", "planet Y")
    noise_per_step = 2  # one uniform for the transition, one for the reward

    def __post_init__(self):
        check_probability("p_common", self.p_common)
        check_probability("prob_low", self.prob_low)
        check_probability("prob_high", self.prob_high)
        if self.prob_low > self.prob_high:
            raise ValueError(f"prob_low ({self.prob_low}) must not exceed prob_high ({self.prob_high})")
        if not self.drift_sd >= 0:
            raise ValueError(f"drift_sd must be >= 0, got {self.drift_sd!r}")

    def action_label(self, state: int, action: int) -> str:
        """The letter of an action: X/Y at the start, D/F on planet X, J/K on planet Y."""
        return PLANETS[action] if state == 0 else ALIENS[state - 1][action]

    def transition_probs(self) -> np.ndarray:
        """Known first-stage dynamics P(planet | spaceship). Returns: [n_actions, 2 planets]."""
        p = self.p_common
        return np.array([[p, 1 - p], [1 - p, p]])

    def draw_experiments(self, rngs):
        return {"reward_probs": np.stack([rng.uniform(self.prob_low, self.prob_high, (2, 2))
                                          for rng in rngs])}  # [n, planet, alien]

    def advance_episode(self, params, rngs):
        step = np.stack([rng.normal(0.0, self.drift_sd, (2, 2)) for rng in rngs])
        return {**params, "reward_probs": np.clip(params["reward_probs"] + step,
                                                  self.prob_low, self.prob_high)}

    def start_states(self, params, episode, state):
        return np.zeros(len(params["reward_probs"]), int)

    def transition(self, params, state, action, noise):
        probs = params["reward_probs"]  # [n, 2, 2]
        n = len(state)
        stage1 = state == 0
        common = noise[:, 0] < self.p_common
        planet = np.where(common, action, 1 - action)  # 0 = X, 1 = Y
        paid = noise[:, 1] < probs[np.arange(n), np.clip(state - 1, 0, 1), action]
        next_state = np.where(stage1, planet + 1, 0)  # after stage 2 the next episode starts at 0
        reward = np.where(stage1, 0.0, paid.astype(float))
        info = {key: probs.reshape(n, 4)[:, i] for i, key in enumerate(PROB_KEYS)}
        info["common"] = np.where(stage1, common, False)
        return next_state, reward, ~stage1, info

    # story renderer: a forward-written log of questions, answers and outcomes (the CogBench wording,
    # except that past days are numbered forward, "Day 3.", instead of counted back, "3 days ago")
    def story_intro(self, experiment_info, experiment):
        return COVER_STORY

    def story_opening(self, experiment_info, experiment, state, episode):
        return f"\nDay {episode + 1}.\n"

    def story_question(self, experiment_info, experiment, state):
        if state == 0:
            return "Q: Do you want to take the spaceship to planet X or planet Y?\nA: Planet"
        aliens = ALIENS[state - 1]
        return f"Q: Do you want to trade with alien {aliens[0]} or {aliens[1]}?\nA: Alien"

    def story_choices(self, experiment_info, experiment, state):
        return [" " + self.action_label(state, a) for a in range(self.n_actions)]

    def story_outcome(self, experiment_info, experiment, state, action, reward, next_state, done):
        if state == 0:  # the spaceship's outcome is the planet reached
            words = f"You arrive at planet {PLANETS[next_state - 1]}"
        else:
            words = "You received treasures" if reward > 0 else "You received junk"
        return f".\n{words}.\n", words

    # transcript renderer
    def transcript_state_tokens(self, experiment_info, experiment):
        return ["ts:start", "ts:planetX", "ts:planetY"]

    def transcript_action_tokens(self, state):
        return ["ts:" + self.action_label(state, a) for a in range(self.n_actions)]

    def transcript_episode_tokens(self, state_tokens, state, episode):
        return [state_tokens[state]]  # "ts:start" itself marks a new episode

    def transcript_outcome_tokens(self, state_tokens, state, action, reward, next_state, done):
        if state == 0:
            return [state_tokens[next_state]]  # stage 1 pays nothing: the planet is the outcome
        # the payout word names the alien (ts:D1 = alien D paid, ts:D0 = it did not): an alien's
        # record is then one attention lookup away, which a small organism learns far more easily
        # than joining an alien word to the reward word after it (issue 3 note)
        return [f"ts:{self.action_label(state, action)}{1 if reward > 0 else 0}"]

    def transcript_tokens(self):
        actions = {"ts:" + self.action_label(s, a) for s in range(3) for a in range(2)}
        payouts = {f"ts:{alien}{paid}" for planet in ALIENS for alien in planet for paid in (0, 1)}
        return set(self.transcript_state_tokens({}, 0)) | actions | payouts
