"""The choice models that are fitted, and their vectorised negative log-likelihoods.

A model is an agent of ``tdsae.agents`` with some constructor arguments free (each with bounds
and a search scale) and the rest fixed; gamma is fixed at 0.99 as in the paper (PAPERS.md §1.3).
Likelihoods count only the choices after the random-policy episodes, but every step, the random
ones included, drives learning (PAPERS.md §1.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tdsae.agents import get_agent
from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import Trajectory
from tdsae.validation import check_int

GAMMA = 0.99  # discount of every fitted learner, fixed as in the paper


SCALES = {  # search scale: forward map to an unbounded line, and its inverse
    "linear": (lambda v: v, lambda z: z),
    "log": (np.log, np.exp),  # for values spanning orders of magnitude (inverse temperatures)
    "logit": (lambda v: np.log(v) - np.log1p(-v), lambda z: 1.0 / (1.0 + np.exp(-z))),  # rates near 0 or 1
}


@dataclass(frozen=True)
class ParamSpec:
    """One free parameter: its bounds and the scale on which it is searched."""

    name: str  # the agent's constructor argument
    low: float  # lower bound of the fit (inclusive)
    high: float  # upper bound of the fit (inclusive)
    scale: str = "linear"  # key of SCALES: search is uniform on this scale between the bounds

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {sorted(SCALES)}, got {self.scale!r}")

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Map search coordinates u in [0, 1] to parameter values. Args/Returns: same shape."""
        forward, inverse = SCALES[self.scale]
        low, high = forward(self.low), forward(self.high)
        return np.clip(inverse(low + np.clip(u, 0.0, 1.0) * (high - low)), self.low, self.high)

    def to_unit(self, value: np.ndarray) -> np.ndarray:
        """Inverse of from_unit. Args/Returns: same shape."""
        forward, _ = SCALES[self.scale]
        low, high = forward(self.low), forward(self.high)
        return (forward(np.clip(value, self.low, self.high)) - low) / (high - low)


# alpha in (0, 1) open: the bounds stay 1e-3 inside it; beta in (0, 50]: at beta = 0.01 a softmax
# over values within [0, 1] is within 0.5% of uniform, so the lower bound stands in for 0
ALPHA = ParamSpec("alpha", 1e-3, 1.0 - 1e-3, "logit")  # learning rate; logit: small-alpha optima are narrow
BETA = ParamSpec("beta", 1e-2, 50.0, "log")  # softmax inverse temperature
WEIGHT = ParamSpec("w", 0.0, 1.0)  # hybrid's weight of model-based first-stage values
EPSILON = ParamSpec("epsilon", 1e-4, 1.0)  # heuristics' lapse probability (0 would give log 0)


@dataclass(frozen=True)
class ModelSpec:
    """A fitted model: which agent, which arguments are free, which are fixed."""

    name: str  # registry name in MODELS
    agent: str  # registry name in tdsae.agents.AGENTS
    params: tuple[ParamSpec, ...]  # free parameters, in this order in every array of values
    fixed: dict = field(default_factory=dict)  # constructor arguments held fixed
    tasks: tuple[str, ...] = ("twostep", "gridworld")  # tasks the agent supports

    @property
    def n_params(self) -> int:
        """Number of free parameters k (BIC's penalty is k ln n)."""
        return len(self.params)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the free parameters."""
        return tuple(p.name for p in self.params)


MODELS: dict[str, ModelSpec] = {
    "qlearning": ModelSpec("qlearning", "qlearning", (ALPHA, BETA), {"gamma": GAMMA}),
    "model_based": ModelSpec("model_based", "model_based", (ALPHA, BETA), {"gamma": GAMMA}),
    "hybrid": ModelSpec("hybrid", "hybrid", (ALPHA, BETA, WEIGHT), {"gamma": GAMMA}, ("twostep",)),
    "wsls": ModelSpec("wsls", "wsls", (EPSILON,)),
    "copy_best": ModelSpec("copy_best", "copy_best", (EPSILON,)),
    "random": ModelSpec("random", "random", ()),
}


def get_model(name: str) -> ModelSpec:
    """A model by registry name; ValueError naming the allowed ones otherwise."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def models_for_task(task: Task) -> list[str]:
    """Names of the models that support this task, in MODELS order."""
    return [name for name, spec in MODELS.items() if task.name in spec.tasks]


def make_choice_mask(traj: Trajectory, n_random_episodes: int) -> np.ndarray:
    """Steps whose choice counts: valid, with an action, after the random-policy episodes.

    Returns: bool [n_experiments, n_steps].
    """
    n_random_episodes = check_int(n_random_episodes, "n_random_episodes", 0)
    return traj.valid & (traj.action >= 0) & (traj.episode >= n_random_episodes)


def count_choices(traj: Trajectory, n_random_episodes: int) -> np.ndarray:
    """Counted choices per experiment, ValueError if any experiment has none. Returns: int [n]."""
    counts = make_choice_mask(traj, n_random_episodes).sum(axis=1)
    if np.any(counts == 0):
        empty = np.nonzero(counts == 0)[0]
        raise ValueError(f"experiments {empty[:10].tolist()} have no choices after the first "
                         f"{n_random_episodes} (random-policy) episodes, so nothing can be fitted; "
                         "play more episodes or lower n_random_episodes")
    return counts


def check_task(spec: ModelSpec, task: Task) -> None:
    """ValueError unless the model can be fitted to choices in this task."""
    if task.n_actions == 0:
        raise ValueError(f"task {task.name!r} has no choices to fit (its walks are random)")
    if task.name not in spec.tasks:
        raise ValueError(f"model {spec.name!r} supports tasks {spec.tasks}, not {task.name!r}")


def compute_nll(task: Task, traj: Trajectory, model: str, params: dict | None = None,
                n_random_episodes: int = 7) -> np.ndarray:
    """Negative log-likelihood of each experiment's counted choices, in one vectorised replay.

    Args: task; traj [n, n_steps]; model: name in MODELS; params: free parameter name -> scalar or
    [n] (one setting per row; repeat rows with traj.select to score many settings of one subject);
    n_random_episodes: leading episodes excluded from the likelihood (they still drive learning).
    Returns: [n].
    """
    spec = get_model(model)
    check_task(spec, task)
    params = {} if params is None else dict(params)
    if set(params) != set(spec.param_names):
        raise ValueError(f"model {model!r} takes parameters {spec.param_names}, got {tuple(params)}")
    agent = get_agent(spec.agent, **spec.fixed, **params)
    mask = make_choice_mask(traj, n_random_episodes)
    return -agent.loglik(task, traj, choice_mask=mask)


def compute_nll_unit(task: Task, traj: Trajectory, spec: ModelSpec, rows: np.ndarray, units: np.ndarray,
                     n_random_episodes: int) -> np.ndarray:
    """NLL of traj's rows at search coordinates: the fitter's inner loop.

    Args: rows int [m] (subjects, repeats allowed); units [m, k] in [0, 1]. Returns: [m].
    """
    values = {p.name: p.from_unit(units[:, i]) for i, p in enumerate(spec.params)}
    return compute_nll(task, traj.select(rows), spec.name, values, n_random_episodes)
