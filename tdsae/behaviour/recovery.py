"""Parameter recovery: simulate agents with known parameters, fit them, compare.

If fitted values do not track the true ones on simulated data, a fitted value on an LM's choices
means nothing; recovery also shows over which ranges a parameter is identifiable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from tdsae.agents import get_agent
from tdsae.behaviour.estimation import FitResult, fit_model, fit_models
from tdsae.behaviour.likelihoods import get_model
from tdsae.tasks.environment import Task, run_agent
from tdsae.tasks.trajectory import Trajectory

DRAW_STREAM = 2  # spawn key of the true-parameter draws (tasks use 0 and 1 of the same seed)
MODEL_RECOVERY_STREAM = 3  # spawn key of the simulated experiments of recover_models, one child per generator


@dataclass
class RecoveryResult:
    """True against fitted parameters of simulated subjects."""

    table: pd.DataFrame  # one row per subject: true_<name>, fit_<name> for each free parameter
    r: dict[str, float]  # Pearson r of true vs fitted, per free parameter
    rho: dict[str, float]  # Spearman rank correlation: robust to the few fits stuck on a bound
    n_at_bound: dict[str, int]  # subjects whose fitted value sits on a fit bound, per parameter
    fit: FitResult  # the fit itself (nll, n_choices, ...)


def draw_params(model: str, ranges: dict[str, tuple[float, float]], n_subjects: int, seed: int) -> dict[str, np.ndarray]:
    """Uniform draws of each free parameter over its range. Returns: name -> [n_subjects]."""
    spec = get_model(model)
    if set(ranges) != set(spec.param_names):
        raise ValueError(f"model {model!r} needs ranges for {spec.param_names}, got {tuple(ranges)}")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(DRAW_STREAM,)))
    draws = {}
    for p in spec.params:
        low, high = ranges[p.name]
        if not p.low <= low <= high <= p.high:
            raise ValueError(f"range of {p.name} must lie within the fit bounds [{p.low}, {p.high}], "
                             f"got ({low}, {high})")
        draws[p.name] = rng.uniform(low, high, n_subjects)
    return draws


def simulate_subjects(task: Task, model: str, params: dict[str, np.ndarray], n_episodes: int = 30,
                      seed: int = 0, n_random_episodes: int = 7) -> Trajectory:
    """Let one simulated subject per parameter setting play the task (fixed arguments as fitted).

    Args: params: name -> [n_subjects]. Returns: Trajectory [n_subjects, n_episodes * max_steps].
    """
    spec = get_model(model)
    n_subjects = len(next(iter(params.values()))) if params else 1
    agent = get_agent(spec.agent, **spec.fixed, **params)
    return run_agent(task, agent, n_subjects, n_episodes, seed, n_random_episodes)


def recover_parameters(task: Task, model: str = "qlearning", ranges: dict | None = None,
                       n_subjects: int = 100, n_episodes: int = 30, seed: int = 0,
                       n_random_episodes: int = 7, **options) -> RecoveryResult:
    """Simulate subjects with parameters drawn uniformly over ranges, fit them, correlate.

    Args: ranges: name -> (low, high); default for Q-learning alpha (0.05, 0.95), beta (1, 20);
    options: passed to fit_model (n_restarts, grid_points, ...). Returns: RecoveryResult.
    """
    if ranges is None:
        if model != "qlearning":
            raise ValueError(f"give ranges for model {model!r}; only qlearning has defaults")
        ranges = {"alpha": (0.05, 0.95), "beta": (1.0, 20.0)}
    true = draw_params(model, ranges, n_subjects, seed)
    traj = simulate_subjects(task, model, true, n_episodes, seed, n_random_episodes)
    fit = fit_model(task, traj, model, n_random_episodes=n_random_episodes, seed=seed, **options)
    table = pd.DataFrame({f"{kind}_{name}": values for name in true
                          for kind, values in (("true", true[name]), ("fit", fit.params[name]))})
    r = {name: float(np.corrcoef(true[name], fit.params[name])[0, 1]) for name in true}
    rho = {name: float(spearmanr(true[name], fit.params[name])[0]) for name in true}
    spec = get_model(model)
    at_bound = {p.name: int(np.sum(np.isclose(fit.params[p.name], p.low) | np.isclose(fit.params[p.name], p.high)))
                for p in spec.params}
    return RecoveryResult(table, r, rho, at_bound, fit)


def recover_models(task: Task, fits: dict[str, FitResult], models: list[str] | None = None, n_episodes: int = 30,
                   seed: int = 0, n_random_episodes: int = 7, **options) -> pd.DataFrame:
    """Model recovery: simulate each model with its fitted parameters, refit every model, count BIC winners.

    Each generating model g plays the task once per subject of fits[g], with that subject's fitted
    parameters, so the simulated data look like the data the fits came from. If BIC does not pick g
    on data g generated, a BIC win on real data says little.
    Args: fits: name -> FitResult on real data (e.g. from fit_models); models: generators and
    candidates (default: every model in fits); options: passed to fit_model.
    Returns: tidy frame: generator, fitted, fraction (share of subjects whose lowest BIC is that
    model's; each generator's fractions sum to 1).
    """

    names = list(fits) if models is None else list(models)
    missing = [name for name in names if name not in fits]
    if missing:
        raise ValueError(f"recover_models needs fits of {missing}; fits holds {sorted(fits)}")
    rows = []
    for g, generator in enumerate(names):
        sim_seed = int(np.random.SeedSequence(seed, spawn_key=(MODEL_RECOVERY_STREAM, g)).generate_state(1)[0])
        traj = simulate_subjects(task, generator, fits[generator].params, n_episodes, sim_seed, n_random_episodes)
        refits = fit_models(task, traj, names, n_random_episodes=n_random_episodes, seed=seed, **options)
        bic = np.stack([refits[name].bic for name in names])  # [n_models, n_subjects]
        share = np.bincount(bic.argmin(axis=0), minlength=len(names)) / bic.shape[1]
        rows += [{"generator": generator, "fitted": name, "fraction": float(s)} for name, s in zip(names, share)]
    return pd.DataFrame(rows)
