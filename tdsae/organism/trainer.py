"""Train the organism by next-token prediction and save it, with checkpoints, in one rename.

Layout of a saved organism (every folder loads with ``tdsae.models.load_model``)::

    out_dir/                       the final model, its tokenizer, training.json
    out_dir/checkpoints/step-000000/  the same files at each checkpoint step (final included)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdsae.models import masked_next_token_loss
from tdsae.organism.corpus import TranscriptRecipe, build_batches, seed_for
from tdsae.organism.network import OrganismConfig, build_organism
from tdsae.organism.tokenizer import action_token_ids, build_tokenizer
from tdsae.runtime import library_versions, matmul_precision, tqdm
from tdsae.validation import check_count, check_int, check_number, check_seed

RECORD = "training.json"
CHECKPOINTS = "checkpoints"
INIT_STREAM = 3  # spawn key of the weight initialisation


@dataclass(frozen=True)
class TrainingConfig:
    """How the organism is optimised."""

    steps: int = 1500  # optimizer steps (one single-task batch each)
    batch_tokens: int = 1024  # most padded words per batch (rows x longest transcript); smaller = more updates
    #   (1,500 steps of 1,024 reach the held-out loss of 750 of 4,096 in 45% of the time: tdsae.organism)
    lr: float = 2e-3  # peak AdamW learning rate
    warmup_steps: int = 30  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    betas: tuple = (0.9, 0.95)  # AdamW moment decays
    grad_clip: float = 1.0  # max global gradient norm
    precision: str | None = None  # forward pass dtype: "bfloat16" (autocast, fp32 master weights; ~1.4-2x faster
    #   where bf16 is native) or "float32"; None: tdsae.runtime.matmul_precision decides for the device
    action_weight: float = 1.0  # loss weight of action words relative to every other word (1: plain next-token loss)
    checkpoint_steps: tuple = (0, 10, 30, 100, 300)  # steps saved besides the final one
    fused_optimizer: bool = True  # torch's fused AdamW kernel (one kernel for every parameter; ~15% faster steps
    #   on 2 AVX2 cores, benchmarks/organism.py); False: the multi-tensor ("foreach") one
    seed: int = 0  # master seed: data, batch order and initial weights

    def __post_init__(self):
        for name in ("steps", "batch_tokens"):
            check_count(getattr(self, name), name)
        check_int(self.warmup_steps, "warmup_steps", 0)
        check_seed(self.seed)
        check_number(self.lr, "lr", low=0, low_open=True)
        check_number(self.min_lr_ratio, "min_lr_ratio", low=0, high=1)
        check_number(self.weight_decay, "weight_decay", low=0)
        check_number(self.grad_clip, "grad_clip", low=0, low_open=True)
        check_number(self.action_weight, "action_weight", low=0, low_open=True)
        for beta in self.betas:
            check_number(beta, "betas", low=0, high=1, high_open=True)
        for step in self.checkpoint_steps:
            check_int(step, "checkpoint_steps", 0)
        if self.precision not in (None, "float32", "bfloat16"):
            raise ValueError(f"training precision {self.precision!r} is not one of: bfloat16, float32, None "
                             "(decided by the hardware)")


@dataclass
class TrainingResult:
    """What a run produced."""

    path: Path  # the saved organism
    model: object  # the trained LlamaForCausalLM, in eval mode (the same weights as path)
    losses: list  # [steps] mean next-token loss of each batch
    tasks: list  # [steps] task of each batch
    wall_seconds: float  # data generation + training + saving


def lr_factor(step: int, config: TrainingConfig) -> float:
    """Multiplier of the peak lr at a step: linear warm-up, then cosine to min_lr_ratio."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def next_token_loss(model, ids: torch.Tensor, pad_id: int, bf16: bool = False,
                    action_ids: torch.Tensor | None = None, action_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy of predicting ids[:, 1:] from ids[:, :-1], padding ignored, averaged over words.

    Args: ids [batch, seq] right-padded (so no attention mask is needed: a causal model never
    looks right); bf16: bf16 autocast of the forward pass (ask tdsae.runtime.matmul_precision
    first: on a CPU without native bf16 it is ~100x slower); action_ids, action_weight: targets in
    action_ids count action_weight times (a weighted mean).
    Returns: scalar loss; with action_weight 1 the plain mean next-token loss.
    """
    device = ids.device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=ids[:, :-1], use_cache=False).logits  # [batch, seq - 1, vocab]
    weight = None
    if action_ids is not None and action_weight != 1.0:
        weight = torch.where(torch.isin(ids[:, 1:], action_ids.to(device)), action_weight, 1.0)
    return masked_next_token_loss(logits, ids, pad_id, weight)


def save_folder(model, tokenizer, path: Path, record: dict) -> None:
    """save_pretrained (safetensors) the model and tokenizer with a JSON record into path."""
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    (path / RECORD).write_text(json.dumps(record, indent=2, default=str))


def train_organism(out_dir, config: OrganismConfig = OrganismConfig(),
                   recipe: TranscriptRecipe = TranscriptRecipe(),
                   training: TrainingConfig = TrainingConfig(), device: str = "cpu",
                   overwrite: bool = False) -> TrainingResult:
    """Build, train and save an organism; a killed run leaves nothing at out_dir.

    Args: out_dir: target folder (may exist only if empty, or with overwrite=True); config,
    recipe, training: what to build, read and how; device: "cpu" or "cuda".
    Returns: TrainingResult with the per-step losses.
    """
    out_dir = Path(out_dir)
    if training.precision is None:
        training = dataclasses.replace(training, precision=matmul_precision(device).dtype)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} already holds files; pass overwrite=True to replace them")
    started = time.perf_counter()
    tokenizer = build_tokenizer()
    batches = build_batches(recipe, tokenizer, training.steps, training.batch_tokens, training.seed)
    action_ids = action_token_ids(tokenizer)
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(int(seed_for(training.seed, INIT_STREAM).generate_state(1)[0]))
        model = build_organism(config, tokenizer)
    model.to(device).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    keep = [p for n, p in model.named_parameters() if p.ndim < 2]  # norms: no weight decay
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": training.weight_decay},
                                   {"params": keep, "weight_decay": 0.0}],
                                  lr=training.lr, betas=training.betas, fused=training.fused_optimizer)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, training))
    record = {"organism": dataclasses.asdict(config), "recipe": dataclasses.asdict(recipe),
              "training": dataclasses.asdict(training), "device": device, "versions": library_versions(),
              "n_parameters": sum(p.numel() for p in model.parameters())}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    tmp.chmod(0o755)  # mkdtemp makes it private; the renamed model should read like any folder
    losses, tasks = [], []
    try:
        bar = tqdm(batches, desc="organism", unit="step")
        for step, (task, ids) in enumerate(bar):
            if step in training.checkpoint_steps:
                save_checkpoint(model, tokenizer, tmp, step, record, losses, tasks)
            loss = next_token_loss(model, ids.to(device), tokenizer.pad_token_id, training.precision == "bfloat16",
                                   action_ids,
                                   training.action_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), training.grad_clip)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            tasks.append(task)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", task=task, refresh=False)
        model.eval()
        record["wall_seconds_training"] = time.perf_counter() - started
        save_checkpoint(model, tokenizer, tmp, training.steps, record, losses, tasks)
        save_folder(model, tokenizer, tmp, {**record, "step": training.steps, "losses": losses, "tasks": tasks})
        place_folder(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return TrainingResult(out_dir, model, losses, tasks, time.perf_counter() - started)


def save_checkpoint(model, tokenizer, root: Path, step: int, record: dict, losses: list, tasks: list) -> None:
    """Save the model as it is after `step` updates to root/checkpoints/step-NNNNNN."""
    save_folder(model, tokenizer, root / CHECKPOINTS / f"step-{step:06d}",
                {**record, "step": step, "losses": list(losses), "tasks": list(tasks)})


def place_folder(tmp: Path, out_dir: Path) -> None:
    """Rename tmp to out_dir, replacing an empty or existing out_dir in as few steps as possible."""
    if out_dir.exists() and any(out_dir.iterdir()):
        old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".old"))
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)  # POSIX rename may replace an empty directory


def list_checkpoints(path) -> dict[int, Path]:
    """The checkpoint folders of a saved organism, by step (the final step included)."""
    root = Path(path) / CHECKPOINTS
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist: {path} is not an organism saved with checkpoints")
    return {int(p.name.split("-")[1]): p for p in sorted(root.glob("step-*")) if p.is_dir()}


def read_training_record(path) -> dict:
    """The JSON record of how the organism at path was trained."""
    return json.loads((Path(path) / RECORD).read_text())
