"""Fitting speed and parameter recovery at the paper's scale (100 subjects x 30 episodes).

Writes benchmarks/results/fitting.json. Issue targets: a Q-learning fit of 100
subjects in <= 2 s; recovery r >= 0.9 for alpha and beta over the ranges used.
"""

import json
import time
from pathlib import Path

import numpy as np

from tdsae.artifacts import write_result_by_machine
from tdsae.behaviour import draw_params, fit_model, recover_parameters, simulate_subjects
from tdsae.tasks import get_task

RANGES = {"alpha": (0.05, 0.95), "beta": (1.0, 20.0)}
OUT = Path(__file__).parent / "results" / "fitting.json"


def measure(task_name: str) -> dict:
    task = get_task(task_name)
    true = draw_params("qlearning", RANGES, 100, 0)
    traj = simulate_subjects(task, "qlearning", true, n_episodes=30, seed=0, n_random_episodes=7)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fit_model(task, traj, "qlearning", seed=0)
        times.append(time.perf_counter() - start)
    recovery = recover_parameters(task, ranges=RANGES, n_subjects=100, n_episodes=30, seed=0)
    return {
        "fit_seconds_min": min(times), "fit_seconds_median": float(np.median(times)),
        "recovery_pearson": {k: float(v) for k, v in recovery.r.items()},
        "recovery_spearman": {k: float(v) for k, v in recovery.rho.items()},
        "fits_at_bound": {k: int(v) for k, v in recovery.n_at_bound.items()},
    }


def main() -> None:
    results = {"ranges": RANGES, "subjects": 100, "episodes": 30,
               "tasks": {name: measure(name) for name in ("twostep", "gridworld")}}
    print(json.dumps(write_result_by_machine(OUT, results), indent=2))


if __name__ == "__main__":
    main()
