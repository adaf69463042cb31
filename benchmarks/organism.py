"""Organism training speed, lever by lever, against the recipe of the issue that asked for it, in the same run.

Usage: python benchmarks/organism.py [--skip-full]
Writes benchmarks/results/organism.json, one entry per kind of machine.

1. Step levers, on the same batches: 4,096-token batches with the multi-tensor AdamW (the recipe when
   "a step takes about 0.65 s" was measured), then 1,024-token batches with that optimizer, with torch's
   fused AdamW (the trainer's default), with eager instead of SDPA attention, and under torch.compile
   (its compile time recorded apart). Each: seconds per step and tokens per second after warm-up steps.
2. Whole runs to the same held-out loss: the preset's organism as the trainer now trains it, and the old
   recipe (750 steps of 4,096 tokens, multi-tensor AdamW), each scored by heldout_loss on the same
   held-out transcripts. The ratio of wall times is the speed-up at equal final loss. The walker keeps
   the old recipe's shape (fewer steps or a higher rate never learned the walk in context: measured for
   issue 14), so only its step levers are timed.
   Also: two trainings side by side on one thread each, against one on every thread (trained_population).
3. The preset organism's choice-probability r with held-out agents (and its untrained step-0 control's)
   and its reward gain over random play.
"""

import dataclasses
import json
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from tdsae.agents import RandomAgent
from tdsae.artifacts import write_result_by_machine
from tdsae.models import load_model
from tdsae.organism import (build_batches, build_organism, build_tokenizer, compare_choices, heldout_loss,
                            list_checkpoints, next_token_loss, train_organism)
from tdsae.pipeline.organisms import WALKER_MIX, configs_from_settings
from tdsae.play import play_task
from tdsae.presets import resolve_settings
from tdsae.runtime import pick_device
from tdsae.stats import paired_difference
from tdsae.tasks import run_agent

OUT = Path(__file__).parent / "results" / "organism.json"
WARMUP, TIMED = 10, 60  # steps before timing, steps timed
OLD = {"steps": 750, "batch_tokens": 4096, "lr": 2e-3, "fused_optimizer": False}  # the recipe the issue measured


def step_time(config, recipe, batch_tokens: int, fused: bool, attention: str = "sdpa", compiled: bool = False,
              threads: int | None = None) -> dict:
    """Seconds per training step and tokens per second on the same seeded batches (fp32 on the CPU)."""
    if threads is not None:
        torch.set_num_threads(threads)
    tokenizer = build_tokenizer()
    batches = build_batches(recipe, tokenizer, WARMUP + TIMED, batch_tokens, seed=0)
    torch.manual_seed(0)
    model = build_organism(config, tokenizer)
    model.config._attn_implementation = attention
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=fused)
    forward = torch.compile(model, dynamic=True) if compiled else model

    def run(part):
        start = time.perf_counter()
        for _, ids in part:
            loss = next_token_loss(forward, ids, tokenizer.pad_token_id)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return time.perf_counter() - start

    warm = run(batches[:WARMUP])
    timed = run(batches[WARMUP:])
    tokens = sum(int((ids != tokenizer.pad_token_id).sum()) for _, ids in batches[WARMUP:])
    return {"s_per_step": timed / TIMED, "tokens_per_s": tokens / timed, "warmup_s": warm}


def side_by_side(config, recipe, batch_tokens: int) -> dict:
    """Two trainings at once, one thread each (what trained_population does on 2 cores): tokens per second of the
    pair, against one training on every thread, measured just before."""
    alone = step_time(config, recipe, batch_tokens, fused=True)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pair = [f.result() for f in [pool.submit(step_time, config, recipe, batch_tokens, True, "sdpa", False, 1)
                                     for _ in range(2)]]
    together = sum(run["tokens_per_s"] for run in pair)
    return {"alone_tokens_per_s": alone["tokens_per_s"], "pair_tokens_per_s": together,
            "throughput_ratio": together / alone["tokens_per_s"]}


def whole_run(out_dir: Path, config, recipe, training, device: str, tasks) -> dict:
    """Train to the end and score on held-out transcripts."""
    start = time.perf_counter()
    result = train_organism(out_dir, config, recipe, training, device=device, overwrite=True)
    wall = time.perf_counter() - start
    return {"steps": training.steps, "batch_tokens": training.batch_tokens, "lr": training.lr,
            "fused_optimizer": training.fused_optimizer, "wall_s": wall, "s_per_step": wall / training.steps,
            "heldout_loss": heldout_loss(result.model, build_tokenizer(), tasks, recipe=recipe)}


def main() -> None:
    settings = resolve_settings("tiny")
    config, recipe, training = configs_from_settings(settings)
    walker_config, walker_recipe, walker_training = configs_from_settings(settings, WALKER_MIX)
    device = pick_device(settings.device)
    results = {"precision": training.precision, "device": device, "levers": {}}
    levers = {"old: 4096-token batches, multi-tensor AdamW": dict(batch_tokens=4096, fused=False),
              "1024-token batches, multi-tensor AdamW": dict(batch_tokens=1024, fused=False),
              "1024-token batches, fused AdamW": dict(batch_tokens=1024, fused=True),
              "1024-token batches, fused AdamW, eager attention": dict(batch_tokens=1024, fused=True, attention="eager"),
              "1024-token batches, fused AdamW, torch.compile": dict(batch_tokens=1024, fused=True, compiled=True)}
    for name, lever in levers.items():
        results["levers"][name] = step_time(config, recipe, **lever)
        print(name, results["levers"][name], flush=True)
    results["walker_levers"] = {
        "4096-token walks, multi-tensor AdamW": step_time(walker_config, walker_recipe, 4096, fused=False),
        "4096-token walks, fused AdamW": step_time(walker_config, walker_recipe, 4096, fused=True)}
    results["side_by_side"] = {"organism": side_by_side(config, recipe, training.batch_tokens),
                               "walker": side_by_side(walker_config, walker_recipe, walker_training.batch_tokens)}
    print(results["walker_levers"], results["side_by_side"], flush=True)
    if "--skip-full" not in sys.argv:
        root = Path(tempfile.mkdtemp())
        all_tasks = ("twostep", "gridworld", "graph")
        runs = {"organism, now": (config, recipe, training, all_tasks),
                "organism, old recipe": (config, recipe, dataclasses.replace(training, **OLD), all_tasks)}
        results["runs"] = {}
        for name, (cfg, rec, tr, tasks) in runs.items():
            results["runs"][name] = whole_run(root / name.replace(", ", "-").replace(" ", "-"), cfg, rec, tr, device,
                                              tasks)
            print(name, results["runs"][name], flush=True)
        for kind in ("organism",):
            now, old = results["runs"][f"{kind}, now"], results["runs"][f"{kind}, old recipe"]
            results[f"{kind}_speedup_at_equal_loss"] = {
                "wall_ratio": old["wall_s"] / now["wall_s"],
                "loss_now_minus_old": {t: now["heldout_loss"][t] - old["heldout_loss"][t] for t in now["heldout_loss"]}}
        folder = root / "organism-now"
        model, untrained = load_model(str(folder)), load_model(str(list_checkpoints(folder)[0]))
        results["r"], results["r_untrained"], results["play_gain_over_random"] = {}, {}, {}
        for name in ("twostep", "gridworld"):
            results["r"][name] = compare_choices(model, model.tokenizer, name, n_experiments=64, seed=0, recipe=recipe).r
            results["r_untrained"][name] = compare_choices(untrained, untrained.tokenizer, name, n_experiments=64,
                                                           seed=0, recipe=recipe).r
            task = recipe.make_task(name)
            played = play_task(model, task, settings.n_experiments, settings.n_episodes, settings.seed,
                               settings.n_random_episodes).trajectory.episode_rewards()
            chance = run_agent(task, RandomAgent(), settings.n_experiments, settings.n_episodes, seed=settings.seed,
                               n_random_episodes=settings.n_random_episodes).episode_rewards()
            learning = slice(settings.n_random_episodes, None)
            results["play_gain_over_random"][name] = paired_difference(played[:, learning].mean(1),
                                                                       chance[:, learning].mean(1))
    base = results["levers"]["old: 4096-token batches, multi-tensor AdamW"]
    results["tokens_per_s_ratio_to_old"] = {name: lever["tokens_per_s"] / base["tokens_per_s"]
                                            for name, lever in results["levers"].items()}
    print(json.dumps(write_result_by_machine(OUT, results), indent=2, default=float))


if __name__ == "__main__":
    main()
