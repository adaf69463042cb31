"""Maximum-likelihood fits per subject: a vectorised grid, then batched trust-region Newton.

Subjects (experiments) are independent, so every subject, and every start of every subject, is
one row of a single vectorised ``agent.evaluate`` replay. The fit is (1) a regular grid over the
box, all subjects and grid points in one replay; (2) from the grid's best point and n_restarts
random points per subject, Newton steps with finite-difference gradient and Hessian, a trust
radius and bound handling, run for all rows at once, each row accepting or rejecting its own step.
scipy's L-BFGS-B (PAPERS.md §1.5 [RECON]) was tried first on the stacked, separable problem: with
one shared line search it needed ~150 iterations and stopped at its iteration cap with restarts,
while one-subject-at-a-time calls cost seconds of Python overhead per model.
Search happens in unit coordinates u in [0, 1]^k (ParamSpec.from_unit), so every parameter,
beta on a log scale, has a comparable step size.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tdsae.behaviour.likelihoods import (ModelSpec, check_task, compute_nll_unit, count_choices, get_model,
                                         models_for_task)
from tdsae.tasks.environment import Task
from tdsae.tasks.trajectory import Trajectory
from tdsae.validation import check_count, check_int, check_seed

GRID_POINTS = {1: 25, 2: 10, 3: 6}  # default grid points per parameter, by number of parameters
FD_STEP = 1e-4  # central-difference step in unit coordinates (rounding error ~1e-7 of the Hessian)
GRAD_TOL = 1e-5  # a row has converged when its projected gradient (unit coordinates) is below this
CURVATURE_FLOOR = 1e-6  # smallest curvature a Newton step divides by (flat directions: the radius rules)


@dataclass
class FitResult:
    """Per-subject maximum-likelihood fit of one model."""

    model: str  # registry name in tdsae.behaviour.MODELS
    params: dict[str, np.ndarray]  # free parameter name -> [n_subjects] fitted value
    nll: np.ndarray  # [n_subjects] negative log-likelihood at the fit
    n_choices: np.ndarray  # [n_subjects] choices counted in the likelihood
    n_params: int  # free parameters k per subject
    n_rows: int  # subject-replays spent (one row = one subject at one setting): the fit's cost
    n_unfinished: int  # starts still improving when maxiter ran out (0: all converged)

    @property
    def bic(self) -> np.ndarray:
        """BIC per subject, k ln(n_choices) + 2 NLL. Returns: [n_subjects]."""
        return self.n_params * np.log(self.n_choices) + 2.0 * self.nll

    def to_frame(self) -> pd.DataFrame:
        """One row per subject: subject, model, fitted parameters, nll, n_choices, bic."""
        frame = pd.DataFrame({"subject": np.arange(len(self.nll)), "model": self.model})
        for name, values in self.params.items():
            frame[name] = values
        return frame.assign(nll=self.nll, n_choices=self.n_choices, bic=self.bic)


def make_grid(n_params: int, points: int) -> np.ndarray:
    """A regular grid on [0, 1]^k, bounds included (MLEs often sit on one). Returns: [points ** k, k]."""
    axis = np.linspace(0.0, 1.0, points) if points > 1 else np.array([0.5])
    return np.array(list(itertools.product(axis, repeat=n_params)), dtype=float).reshape(-1, n_params)


def search_grid(task: Task, traj: Trajectory, spec: ModelSpec, points: int,
                n_random_episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Every subject at every grid point in one replay.

    Returns: (best unit coordinates [n, k], their NLL [n]).
    """
    grid = make_grid(spec.n_params, points)  # [P, k]
    n = traj.n_experiments
    rows = np.repeat(np.arange(n), len(grid))
    nll = compute_nll_unit(task, traj, spec, rows, np.tile(grid, (n, 1)), n_random_episodes)
    nll = nll.reshape(n, len(grid))
    best = nll.argmin(axis=1)
    return grid[best], nll[np.arange(n), best]


def estimate_derivatives(task: Task, traj: Trajectory, spec: ModelSpec, rows: np.ndarray, units: np.ndarray,
                         n_random_episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference gradient and Hessian of each row's NLL, stencil kept inside the box.

    Args: rows int [m]; units [m, k]. Returns: (gradient [m, k], Hessian [m, k, k]).
    """
    m, k = units.shape
    h, eye = FD_STEP, np.eye(k) * FD_STEP
    centre = np.clip(units, h, 1.0 - h)
    probes = [centre] + [centre + sign * eye[i] for i in range(k) for sign in (1, -1)]
    pairs = list(itertools.combinations(range(k), 2))
    probes += [centre + eye[i] + eye[j] for i, j in pairs]
    f = compute_nll_unit(task, traj, spec, np.tile(rows, len(probes)), np.concatenate(probes),
                         n_random_episodes).reshape(len(probes), m)
    up, down = f[1:1 + 2 * k:2], f[2:2 + 2 * k:2]  # [k, m] each
    grad = ((up - down) / (2 * h)).T
    hess = np.zeros((m, k, k))
    hess[:, np.arange(k), np.arange(k)] = ((up - 2 * f[0] + down) / h ** 2).T
    for (i, j), f_ij in zip(pairs, f[1 + 2 * k:]):
        hess[:, i, j] = hess[:, j, i] = (f_ij - up[i] - up[j] + f[0]) / h ** 2
    return grad, hess


def propose_steps(units: np.ndarray, grad: np.ndarray, hess: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Newton steps within the box and a trust radius, one per row.

    Coordinates on a bound whose gradient pushes outwards stay put; the rest take a Newton step
    with curvature |eigenvalue| (a descent direction even where the NLL is not convex), shortened
    to the radius. Args: units, grad [m, k]; hess [m, k, k]; radius [m]. Returns: [m, k].
    """
    k = units.shape[1]
    pinned = ((units <= 0.0) & (grad > 0)) | ((units >= 1.0) & (grad < 0))  # [m, k]
    free = ~pinned
    grad = np.where(free, grad, 0.0)
    hess = np.where(free[:, :, None] & free[:, None, :], hess, 0.0) + pinned[:, None, :] * np.eye(k)
    value, vector = np.linalg.eigh(hess)
    value = np.maximum(np.abs(value), CURVATURE_FLOOR)
    step = -np.einsum("mij,mj->mi", vector, np.einsum("mji,mj->mi", vector, grad) / value)
    length = np.linalg.norm(step, axis=1)
    step *= np.minimum(1.0, radius / np.maximum(length, 1e-300))[:, None]
    return np.clip(units + step, 0.0, 1.0) - units


def refine_newton(task: Task, traj: Trajectory, spec: ModelSpec, rows: np.ndarray, starts: np.ndarray,
                  n_random_episodes: int, maxiter: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Trust-region Newton descent of every row's NLL at once, each row on its own schedule.

    Args: rows int [m] (subject of each start); starts [m, k] in unit coordinates.
    Returns: (optimum [m, k], NLL [m], rows replayed, rows still improving at maxiter).
    """
    units = starts.copy()
    nll = compute_nll_unit(task, traj, spec, rows, units, n_random_episodes)
    replays = len(rows)
    radius = np.full(len(rows), 0.5)  # trust radius in unit coordinates
    grad, hess = np.zeros_like(units), np.zeros(units.shape + units.shape[1:])
    stale = np.ones(len(rows), bool)  # derivatives must be recomputed (the point moved)
    active = np.ones(len(rows), bool)
    for _ in range(maxiter):
        todo = np.nonzero(active & stale)[0]
        if todo.size:
            grad[todo], hess[todo] = estimate_derivatives(task, traj, spec, rows[todo], units[todo],
                                                          n_random_episodes)
            replays += todo.size * (1 + units.shape[1]) * (2 + units.shape[1]) // 2
            stale[todo] = False
            outward = ((units[todo] <= 0.0) & (grad[todo] > 0)) | ((units[todo] >= 1.0) & (grad[todo] < 0))
            projected = np.where(outward, 0.0, grad[todo])
            active[todo[np.abs(projected).max(axis=1) < GRAD_TOL]] = False
        idx = np.nonzero(active)[0]
        if not idx.size:
            break
        step = propose_steps(units[idx], grad[idx], hess[idx], radius[idx])
        trial = compute_nll_unit(task, traj, spec, rows[idx], units[idx] + step, n_random_episodes)
        replays += idx.size
        better = trial < nll[idx]
        gain = np.where(better, nll[idx] - trial, 0.0)
        units[idx[better]] = np.clip(units[idx[better]] + step[better], 0.0, 1.0)
        nll[idx[better]] = trial[better]
        stale[idx[better]] = True
        radius[idx] = np.where(better, np.minimum(2.0 * radius[idx], 1.0), radius[idx] / 4.0)
        stuck = (radius[idx] < 1e-9) | (better & (gain < 1e-10)) | (np.abs(step).max(axis=1) == 0.0)
        active[idx[stuck]] = False
    return units, nll, replays, int(active.sum())


def fit_model(task: Task, traj: Trajectory, model: str, n_random_episodes: int = 7, seed: int = 0,
              n_restarts: int = 2, grid_points: int | None = None, maxiter: int = 50) -> FitResult:
    """Maximum-likelihood parameters of one model for every subject (experiment) of traj.

    Starts per subject: the best point of a grid (grid_points per parameter; default by k from
    GRID_POINTS) plus n_restarts uniform random points drawn from seed; the best local optimum wins.
    Args: task; traj [n_subjects, n_steps]; model: name in MODELS; n_random_episodes: leading
    episodes left out of the likelihood (they still drive learning); maxiter: Newton iterations.
    Returns: FitResult.
    """
    spec = get_model(model)
    check_task(spec, task)
    n_choices = count_choices(traj, n_random_episodes)
    n, k = traj.n_experiments, spec.n_params
    n_restarts = check_int(n_restarts, "n_restarts", 0)
    seed = check_seed(seed)
    if k == 0:
        nll = compute_nll_unit(task, traj, spec, np.arange(n), np.zeros((n, 0)), n_random_episodes)
        return FitResult(model, {}, nll, n_choices, 0, n, 0)
    points = GRID_POINTS.get(k, 4) if grid_points is None else check_count(grid_points, "grid_points")
    grid_best, grid_nll = search_grid(task, traj, spec, points, n_random_episodes)
    random_starts = np.random.default_rng(seed).random((n, n_restarts, k))
    starts = np.concatenate([grid_best[:, None], random_starts], axis=1)  # [n, S, k]
    n_starts = starts.shape[1]
    rows = np.repeat(np.arange(n), n_starts)
    best, nll, replays, unfinished = refine_newton(task, traj, spec, rows, starts.reshape(-1, k),
                                                   n_random_episodes, maxiter)
    best, nll = best.reshape(n, n_starts, k), nll.reshape(n, n_starts)
    pick = nll.argmin(axis=1)
    units = best[np.arange(n), pick]  # [n, k]
    params = {p.name: p.from_unit(units[:, i]) for i, p in enumerate(spec.params)}
    return FitResult(model, params, nll[np.arange(n), pick], n_choices, k, n * points ** k + replays,
                     unfinished)


def fit_models(task: Task, traj: Trajectory, models: list[str] | None = None, **options) -> dict[str, FitResult]:
    """fit_model for several models (default: every model that supports the task).

    Args: options: passed to fit_model (n_random_episodes, seed, n_restarts, ...). Returns: name -> FitResult.
    """
    names = models_for_task(task) if models is None else list(models)
    for name in names:
        get_model(name)  # fail on a bad name before any fitting
    return {name: fit_model(task, traj, name, **options) for name in names}
