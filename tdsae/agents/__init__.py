"""Reference agents, vectorised over experiments: Q-learning, SR-TD, model-based, heuristics.

Each agent plays through ``tdsae.tasks.run_agent`` and replays any trajectory with
``agent.evaluate(task, traj)`` to give per-step choice probabilities, Q-values before the update,
TD errors and per-experiment log-likelihoods.
"""

from __future__ import annotations

from tdsae.agents.base import Agent, Evaluation, softmax_legal
from tdsae.agents.heuristics import CopyBestEpisode, RandomAgent, WinStayLoseShift
from tdsae.agents.model_based import HybridLearner, ModelBasedLearner
from tdsae.agents.qlearning import QLearner
from tdsae.agents.sr import SRLearner

AGENTS = {
    "copy_best": CopyBestEpisode,
    "hybrid": HybridLearner,
    "model_based": ModelBasedLearner,
    "qlearning": QLearner,
    "random": RandomAgent,
    "sr": SRLearner,
    "wsls": WinStayLoseShift,
}

__all__ = [
    "AGENTS", "Agent", "CopyBestEpisode", "Evaluation", "HybridLearner", "ModelBasedLearner",
    "QLearner", "RandomAgent", "SRLearner", "WinStayLoseShift", "get_agent", "softmax_legal",
]


def get_agent(name: str, **params) -> Agent:
    """An agent by registry name (see AGENTS) with its parameters."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of: {', '.join(sorted(AGENTS))}")
    return AGENTS[name](**params)
