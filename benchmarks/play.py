"""Lockstep play with a key-value cache against the naive loop that recomputes the history.

Writes benchmarks/results/play.json. Issue target: the tiny organism plays
100 experiments x 30 episodes of a task in <= 30 s. Speed does not depend on the
weights, so an untrained organism of the tiny size is timed.
"""

import json
import time
from pathlib import Path

import numpy as np
import torch

from tdsae.artifacts import write_result_by_machine
from tdsae.organism import OrganismConfig, build_organism, build_tokenizer
from tdsae.play import play_transcripts
from tdsae.tasks import get_task

OUT = Path(__file__).parent / "results" / "play.json"
WORKLOADS = [("twostep", 100, 30), ("gridworld", 100, 30), ("graph", 100, 30), ("gridworld", 100, 8)]


def timed(model, tokenizer, task, n_exp, n_ep, use_cache):
    start = time.perf_counter()
    result = play_transcripts(model, tokenizer, task, n_exp, n_ep, seed=0, n_random_episodes=min(7, n_ep - 1),
                              use_cache=use_cache)
    return time.perf_counter() - start, result


def main() -> None:
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = build_organism(OrganismConfig(), tokenizer).eval()
    timed(model, tokenizer, get_task("twostep"), 4, 2, True)  # warm-up: first-call overheads
    rows = []
    for name, n_exp, n_ep in WORKLOADS:
        task = get_task(name)
        cached_s, cached = timed(model, tokenizer, task, n_exp, n_ep, True)
        row = {"task": name, "experiments": n_exp, "episodes": n_ep, "cached_s": cached_s,
               "tokens_per_experiment": float(np.mean([len(t) for t in cached.tokens]))}
        if name == "twostep" or n_ep <= 8:
            naive_s, naive = timed(model, tokenizer, task, n_exp, n_ep, False)
            row.update(naive_s=naive_s, speedup=naive_s / cached_s,
                       max_abs_logprob_diff=float(np.nanmax(np.abs(cached.choice_logprobs - naive.choice_logprobs))))
        rows.append(row)
        print(json.dumps(row))
    write_result_by_machine(OUT, {"runs": rows})


if __name__ == "__main__":
    main()
