"""Harvesting the residual stream through nnsight against a bare HF forward with output_hidden_states.

Writes benchmarks/results/harvest.json. Issue target: harvesting (nnsight trace, gather at the
decision and outcome tokens, write every layer to its memory-mapped file, write the index) takes
at most 1.10x a bare forward with ``output_hidden_states=True`` over the same batches. Speed does
not depend on the weights, so an untrained organism of the tiny size is timed, saved and loaded
through tdsae.models.load_model exactly as the trained one is.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tdsae.activations import batch_experiments, harvest_activations, rows_of
from tdsae.artifacts import write_result_by_machine
from tdsae.models import load_model, model_dims, torch_module
from tdsae.organism import OrganismConfig, build_organism, build_tokenizer
from tdsae.play import play_transcripts
from tdsae.tasks import get_task

OUT = Path(__file__).parent / "results" / "harvest.json"
TASKS = ("twostep", "gridworld", "graph")
REPEATS = 7


def bare_forward_seconds(model, played, buffer_mb: float = 256) -> float:
    """The same batches as harvest_activations, through a plain forward that returns every hidden state."""
    hf, vocab = torch_module(model), model.tokenizer.get_vocab()
    n_layers, d_model = model_dims(model)
    counts = rows_of(played).groupby("experiment").size().to_numpy()
    start = time.perf_counter()
    for batch in batch_experiments(counts, n_layers, d_model, buffer_mb):
        tokens = [played.tokens[e] for e in batch]
        ids = torch.full((len(tokens), max(map(len, tokens))), model.tokenizer.pad_token_id)
        for i, words in enumerate(tokens):
            ids[i, : len(words)] = torch.tensor([vocab[w] for w in words])
        with torch.no_grad():
            hf(input_ids=ids, output_hidden_states=True)
    return time.perf_counter() - start


def main() -> None:
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        build_organism(OrganismConfig(), tokenizer).save_pretrained(Path(tmp) / "organism")
        tokenizer.save_pretrained(Path(tmp) / "organism")
        model = load_model(Path(tmp) / "organism", device="cpu")
        rows = []
        for name in TASKS:
            played = play_transcripts(torch_module(model), model.tokenizer, get_task(name), 100, 30, seed=0,
                                      n_random_episodes=7)
            harvest_activations(model, played, Path(tmp) / "warm", progress=False)  # first-call overheads
            bare, harvest = [], []
            for _ in range(REPEATS):  # interleaved, best of each: the machine is noisy
                bare.append(bare_forward_seconds(model, played))
                start = time.perf_counter()
                store = harvest_activations(model, played, Path(tmp) / name, progress=False)
                harvest.append(time.perf_counter() - start)
            row = {"task": name, "experiments": 100, "episodes": 30, "rows": store.n_rows,
                   "layers": len(store.layers), "tokens": int(sum(map(len, played.tokens))),
                   "bare_forward_s": min(bare), "harvest_s": min(harvest), "ratio": min(harvest) / min(bare)}
            rows.append(row)
            print(json.dumps(row))
    write_result_by_machine(OUT, {"target_ratio": 1.10, "runs": rows,
                                  "worst_ratio": float(np.max([r["ratio"] for r in rows]))})


if __name__ == "__main__":
    main()
