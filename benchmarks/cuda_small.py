"""The `small` preset's pipeline and SAE training on a CUDA GPU: does it run, how fast, and how much memory.

Usage: python benchmarks/cuda_small.py [--tokenizer DIR] [--out PATH] [--budget-s S]
Writes benchmarks/results/cuda_small.json (one entry per kind of machine); on a machine without CUDA it
prints that nothing was measured and writes nothing.

`small` studies meta-llama/Llama-3.2-1B from the Hugging Face Hub. A GPU machine that cannot reach the
hub gets a model folder of the same architecture (Llama-3.2-1B's widths, depth, heads and vocabulary
size; plain RoPE) with random weights, saved here and read through the same loading code, and the
tokenizer of --tokenizer (default: SmolLM2's, whose story choices are one token each). Random weights
make this a check of the code path and of its speed, not of any finding. Stages, each timed:

1. the precision decision on the GPU (tdsae.runtime.matmul_precision);
2. story play of the Two-Step task at the preset's experiments and episodes, with the residual stream
   of every layer kept as it plays (played_episodes, harvested_store);
3. the preset's per-layer SAEs (layer_saes: 18,000 vectors, 30 epochs, d_sae = 4 x 2048);
4. the untrained control: a re-initialised copy reading the same stories (untrained_source, harvested_store);
5. SAE training throughput at d_in 2048 x d_sae 8192 in bf16 (the GPU's choice) and in fp32;
6. the tiny preset's organism trained on the GPU, and its play, harvest and SAEs.

A stage that fails is recorded with its error and the next one runs; a stage is skipped once
--budget-s seconds have passed. The JSON is rewritten after every stage.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from tdsae.artifacts import write_result_by_machine  # noqa: E402

OUT = Path(__file__).parent / "results" / "cuda_small.json"
# Llama-3.2-1B's architecture (its config.json), less the llama3 RoPE scaling, which changes no cost
LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "head_dim": 64, "max_position_embeddings": 131072, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "tie_word_embeddings": True, "vocab_size": 128256}
THROUGHPUT = {"d_in": 2048, "d_sae": 8192, "rows": 65536, "steps": 400, "warmup": 40, "batch": 256}


def default_tokenizer() -> Path:
    """SmolLM2's converted folder (its tokenizer's story choices are one token each)."""
    from tdsae.pipeline import model_folder
    from tdsae.presets import SMOLLM2

    return Path(model_folder(SMOLLM2))


def llama_1b_folder(tokenizer_dir: Path, out: Path) -> Path:
    """A Llama-3.2-1B-shaped model with seeded random weights (bf16) and the given tokenizer, saved to out."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(**LLAMA_1B, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


class Stages:
    """Runs named stages in order, timing each and keeping going past failures, within a wall-clock budget."""

    def __init__(self, budget_s: float, out: Path, copy_to: Path | None) -> None:
        self.start, self.budget_s, self.out, self.copy_to = time.perf_counter(), budget_s, out, copy_to
        self.result: dict = {"stages": {}}

    def run(self, name: str, fn) -> object:
        if time.perf_counter() - self.start > self.budget_s:
            self.result["stages"][name] = {"skipped": f"past the {self.budget_s:.0f} s budget"}
            self.save()
            return None
        print(f"== {name}", flush=True)
        torch.cuda.reset_peak_memory_stats()
        began = time.perf_counter()
        try:
            value, record = fn(), {}
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
                value, record = value
            record.update(seconds=round(time.perf_counter() - began, 2),
                          peak_gpu_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2))
        except Exception as err:  # recorded, and the next stage still runs
            traceback.print_exc()
            value, record = None, {"error": f"{type(err).__name__}: {err}"[:2000],
                                   "seconds": round(time.perf_counter() - began, 2)}
        print(f"   {json.dumps(record, default=str)[:1500]}", flush=True)
        self.result["stages"][name] = record
        self.save()
        return value

    def save(self) -> None:
        content = write_result_by_machine(self.out, self.result, device="cuda")
        if self.copy_to is not None:
            self.copy_to.write_text(json.dumps(content, indent=1, default=str))


def sae_summary(saes: dict) -> dict:
    rows = {layer: {k: round(float(v), 4) for k, v in s.metrics.items() if k in ("explained_variance", "l0", "mse",
                                                                                   "frac_alive", "seconds")}
            for layer, s in saes.items()}
    seconds = [r["seconds"] for r in rows.values() if "seconds" in r]
    return {"layers": rows, "sae_seconds_total": round(sum(seconds), 2)}


def throughput(bf16: bool) -> dict:
    """Samples per second of train_sae at d_in 2048 x d_sae 8192 after warm-up (one epoch of a fixed row set)."""
    from tdsae.sae import SAEConfig, SAETrainingConfig, train_sae

    t = THROUGHPUT
    acts = torch.randn(t["batch"] * t["steps"], t["d_in"], generator=torch.Generator().manual_seed(0))
    config = SAEConfig(d_in=t["d_in"], d_sae=t["d_sae"])
    short = SAETrainingConfig(batch_size=t["batch"], epochs=1, bf16=bf16, seed=0)
    train_sae(acts[: t["batch"] * t["warmup"]], config, short, device="cuda", progress=False)  # warm-up, kernels
    torch.cuda.synchronize()
    began = time.perf_counter()
    train_sae(acts, config, short, device="cuda", progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    return {"samples_per_s": round(acts.shape[0] / seconds), "steps": t["steps"], "batch": t["batch"],
            "note": "whole train_sae call (normalisation pass included), after a warm-up call"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", type=Path, default=None, help="folder with the tokenizer the model reads")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--copy-to", type=Path, default=None, help="also write the JSON here after every stage")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stages starting after this many s are skipped")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("cuda_small: torch sees no CUDA device here; nothing measured, nothing written")
        return 0
    from tdsae.pipeline import (harvested_store, layer_saes, played_episodes, trained_organism,
                                untrained_source)
    from tdsae.presets import resolve_settings
    from tdsae.runtime import matmul_precision

    stages = Stages(args.budget_s, args.out, args.copy_to)
    stages.result.update(torch=torch.__version__, gpu=torch.cuda.get_device_name(),
                         architecture={"as": "meta-llama/Llama-3.2-1B, random weights", **LLAMA_1B})
    stages.run("precision", lambda: (None, {k: str(v) for k, v in vars(matmul_precision("cuda")).items()}))
    work = Path(tempfile.mkdtemp(prefix="cuda_small_"))
    os.environ.setdefault("TDSAE_HOME", str(work / "artifacts"))
    tokenizer_dir = args.tokenizer or default_tokenizer()
    folder = stages.run("build Llama-3.2-1B-shaped folder", lambda: llama_1b_folder(tokenizer_dir, work / "llama-1b"))
    if folder is None:
        return 1
    settings = resolve_settings("small", model=str(folder), lm_model=str(folder), universality_partner="",
                                device="cuda")

    def play():
        played = played_episodes(settings, "twostep")
        episodes = settings.n_experiments * settings.n_episodes
        return played, {"experiments": settings.n_experiments, "episodes": settings.n_episodes,
                        "reward_per_episode": round(float(played.trajectory.reward.sum()) / episodes, 4)}

    stages.run("small: story play with the residual stream kept", play)
    def harvest():
        store = harvested_store(settings, "twostep")
        return None, {"layers": list(store.layers), "rows": len(store.index)}

    stages.run("small: harvested store", harvest)
    stages.run("small: per-layer SAEs", lambda: (lambda s: (s, sae_summary(s)))(layer_saes(settings, "twostep")))
    stages.run("SAE throughput bf16, 2048 x 8192", lambda: (None, throughput(True)))
    stages.run("SAE throughput fp32, 2048 x 8192", lambda: (None, throughput(False)))
    stages.run("small: untrained control harvest", lambda: (None, {"rows": len(harvested_store(
        settings, "twostep", model=untrained_source(settings), played_by=str(folder)).index)}))
    tiny = resolve_settings("tiny", device="cuda")
    stages.run("tiny: organism trained on the GPU", lambda: (None, {"folder": str(trained_organism(tiny))}))
    stages.run("tiny: play, harvest and SAEs", lambda: (lambda s: (s, sae_summary(s)))(layer_saes(tiny, "twostep")))
    stages.result["total_seconds"] = round(time.perf_counter() - stages.start, 1)
    stages.save()
    failed = [name for name, record in stages.result["stages"].items() if "error" in record]
    print("failed stages:", failed or "none")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
