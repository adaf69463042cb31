"""Train the organism as a preset resolves it, then measure it against the issue's targets.

Usage: python benchmarks/organism.py [OUT_DIR] [STEPS]
Writes benchmarks/results/organism.json. Targets for `tiny`: trains in <= 5 min
on 2 cores; held-out choice-probability correlation with the generating agent
>= 0.85 (Two-Step and Grid World). Also: the untrained network's correlation (control) and the
organism's reward gain over random play on the same experiments when it plays itself.
"""

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tdsae.agents import RandomAgent
from tdsae.artifacts import write_result_by_machine
from tdsae.models import load_model
from tdsae.organism import compare_choices, list_checkpoints, read_training_record, train_organism
from tdsae.pipeline.organisms import configs_from_settings
from tdsae.play import play_task
from tdsae.presets import resolve_settings
from tdsae.runtime import pick_device
from tdsae.stats import paired_difference
from tdsae.tasks import run_agent

OUT = Path(__file__).parent / "results" / "organism.json"


def main() -> None:
    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "organism"
    overrides = {"organism_steps": int(sys.argv[2])} if len(sys.argv) > 2 else {}
    settings = resolve_settings("tiny", **overrides)
    config, recipe, training = configs_from_settings(settings)
    start = time.perf_counter()
    train_organism(out_dir, config, recipe, training, device=pick_device(settings.device), overwrite=True)
    results = {"steps": settings.organism_steps, "wall_s": time.perf_counter() - start, "r": {}}
    model = load_model(str(out_dir))
    untrained = load_model(str(list_checkpoints(out_dir)[0]))
    results["r_untrained"], results["play_gain_over_random"] = {}, {}
    for name in ("twostep", "gridworld"):
        comparison = compare_choices(model, model.tokenizer, name, n_experiments=64, seed=0, recipe=recipe)
        results["r"][name] = float(comparison.r)
        results[f"{name}_decisions"] = int(len(comparison.state))
        results["r_untrained"][name] = float(compare_choices(untrained, untrained.tokenizer, name, n_experiments=64,
                                                             seed=0, recipe=recipe).r)
        task = recipe.make_task(name)
        played = play_task(model, task, settings.n_experiments, settings.n_episodes, settings.seed,
                           settings.n_random_episodes).trajectory.episode_rewards()
        chance = run_agent(task, RandomAgent(), settings.n_experiments, settings.n_episodes, seed=settings.seed,
                           n_random_episodes=settings.n_random_episodes).episode_rewards()
        learning = slice(settings.n_random_episodes, None)
        results["play_gain_over_random"][name] = paired_difference(played[:, learning].mean(1),
                                                                   chance[:, learning].mean(1))
    record = read_training_record(out_dir)
    losses, tasks = np.array(record["losses"]), np.array(record["tasks"])
    results["final_loss_by_task"] = {t: float(losses[-50:][tasks[-50:] == t].mean()) for t in set(tasks[-50:])}
    results["precision"] = training.precision
    print(json.dumps(write_result_by_machine(OUT, results), indent=2))


if __name__ == "__main__":
    main()
