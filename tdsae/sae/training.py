"""Train an SAE on cached activations, fast: bf16 encoder where bf16 is native, sparse decoder, fused Adam.

    trained = train_sae(acts, SAEConfig(d_in=128, d_sae=512), SAETrainingConfig(l1_coefficient=1.0))
    trained.sae          # folded: unit-norm W_dec rows, acts on raw (unnormalised) activations
    trained.log          # loss, mse_loss, l1_loss (or auxk_loss), l0, dead_latents every log_every steps

The loss is SAELens v6's (tdsae.sae.model.training_loss is the dense reference the tests hold this to).
The gradient step itself (dense encoder, sparse decoder, fused Adam) lives in tdsae.sae.gradients.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from tdsae.runtime import matmul_precision, pick_device, tqdm
from tdsae.sae.config import SAETrainingConfig
from tdsae.sae.gradients import TrainingState, gradient_step, write_back
from tdsae.sae.model import SAE, SAEConfig


@dataclass
class TrainedSAE:
    """What train_sae returns."""

    sae: SAE  # on the training device, in the config's dtype; folded: reads raw acts, unit-norm W_dec rows (a topk
    #   SAE without rescale_acts_by_decoder_norm keeps its norms: folding them would change which latents it keeps)
    log: pd.DataFrame  # one row per log_every steps: step, epoch, seconds (since the loop began), loss, mse_loss,
    #   l1_loss or auxk_loss, l0 (each a mean over the steps of the row), dead_latents (at its last step)
    seconds: float  # wall time of the optimisation loop (data checks and folding excluded)
    normalization_scale: float  # c: the SAE was trained on acts * c (1.0 when normalize is False)


def _as_source(acts, d_in: int):
    """acts as a 2-D torch tensor or numpy array with width d_in, after checking it is non-empty and finite."""
    if not isinstance(acts, torch.Tensor):
        acts = acts if isinstance(acts, np.ndarray) else np.asarray(acts, dtype=np.float32)
    if acts.ndim != 2 or acts.shape[1] != d_in:
        raise ValueError(f"activations have shape {tuple(acts.shape)}: width {acts.shape[-1] if acts.ndim else None} "
                         f"but the SAE config has d_in={d_in}")
    if acts.shape[0] == 0:
        raise ValueError("activations have no rows")
    return acts


def _blocks(acts, chunk: int = 65536):
    """acts [n, d_in] as float32 CPU tensors of at most chunk rows, with their first row's index."""
    for start in range(0, acts.shape[0], chunk):
        block = acts[start:start + chunk]
        yield start, block.float().cpu() if isinstance(block, torch.Tensor) else torch.from_numpy(np.array(block, np.float32))


def _measure_mean(acts) -> torch.Tensor:
    """Mean row of acts [n, d_in] -> [d_in] float32 (summed in float64)."""
    total = torch.zeros(acts.shape[1], dtype=torch.float64)
    for _, block in _blocks(acts):
        total += block.double().sum(0)
    return (total / acts.shape[0]).float()


def _measure_mean_norm(acts, offset: torch.Tensor | None = None) -> float:
    """Mean norm of the rows of acts [n, d_in] (minus offset [d_in]); raises ValueError on NaN or inf."""
    total = 0.0
    for start, block in _blocks(acts):
        finite = torch.isfinite(block).all(dim=-1)
        if not bool(finite.all()):
            row = start + int((~finite).nonzero()[0, 0])
            raise ValueError(f"activations contain NaN or inf (first at row {row})")
        total += float((block if offset is None else block - offset).norm(dim=-1).double().sum())
    return total / acts.shape[0]


def _fetch(acts, rows: torch.Tensor, device: str) -> torch.Tensor:
    """Rows of acts as a float32 [len(rows), d_in] tensor on device."""
    if isinstance(acts, torch.Tensor):
        batch = acts.index_select(0, rows)
    else:
        batch = torch.from_numpy(np.asarray(acts[rows.numpy()], dtype=np.float32))
    return batch.to(device, torch.float32, non_blocking=True)


def train_sae(acts, sae_config: SAEConfig, train_config: SAETrainingConfig | None = None, device: str = "auto",
              progress: bool = True) -> TrainedSAE:
    """Train an SAE on acts [n, d_in] (float32 torch tensor or numpy array, np.memmap included).

    Same seed, data, device and precision -> identical weights. Raises ValueError for a width other than
    sae_config.d_in, an empty or non-finite acts. Returns TrainedSAE (see its fields).
    """
    config = train_config or SAETrainingConfig()
    device = pick_device(device)
    if config.bf16 is None:
        config = dataclasses.replace(config, bf16=matmul_precision(device).bf16)
    acts = _as_source(acts, sae_config.d_in)
    mean = _measure_mean(acts) if config.center else None
    mean_norm = _measure_mean_norm(acts, mean)
    if config.normalize and mean_norm == 0:
        raise ValueError("activations are all zero (or all equal, with center): there is no scale to normalise")
    scale = math.sqrt(sae_config.d_in) / mean_norm if config.normalize else 1.0
    sae = SAE(dataclasses.replace(sae_config), seed=config.seed, decoder_init_norm=config.decoder_init_norm)
    if mean is not None:
        with torch.no_grad():
            sae.b_dec.copy_(mean * scale)  # in the normalised units the trainer works in
    state = TrainingState(sae, config, device)
    n, batch = acts.shape[0], config.batch_size
    steps_per_epoch = math.ceil(n / batch)
    generator = torch.Generator().manual_seed(config.seed)
    sparsity_name = "l1_loss" if sae_config.architecture == "standard" else "auxk_loss"
    rows, totals, in_window = [], torch.zeros(4, device=device), 0
    quiet = {} if progress else {"disable": True}  # passing disable=False would override TQDM_DISABLE
    bar = tqdm(total=config.epochs * steps_per_epoch, unit="step", desc="SAE", **quiet)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        for epoch in range(config.epochs):
            order = torch.randperm(n, generator=generator)  # CPU generator: the same order on every device
            order = order.to(acts.device) if isinstance(acts, torch.Tensor) else order
            for first in range(0, n, batch):
                x = _fetch(acts, order[first:first + batch].sort().values, device) * scale
                totals += gradient_step(state, x, state.dead_mask())
                state.step()
                in_window += 1
                if in_window == config.log_every or state.steps_done == config.epochs * steps_per_epoch:
                    values = (totals / in_window).tolist()
                    dead = int((state.since_fired > config.dead_steps).sum())
                    rows.append({"step": state.steps_done, "epoch": epoch, "seconds": time.perf_counter() - start,
                                 "loss": values[0], "mse_loss": values[1],
                                 sparsity_name: values[2], "l0": values[3], "dead_latents": dead})
                    bar.set_postfix(mse=f"{values[1]:.4g}", l0=f"{values[3]:.1f}", refresh=False)
                    totals.zero_()
                    in_window = 0
                bar.update()
    seconds = time.perf_counter() - start
    bar.close()
    write_back(state, sae, scale)
    return TrainedSAE(sae=sae, log=pd.DataFrame(rows), seconds=seconds, normalization_scale=scale)
