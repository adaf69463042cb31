"""How well an SAE reconstructs activations, under SAELens/SAEBench metric names.

    reconstruction_metrics(sae, acts)  # {"mse", "explained_variance", "l0", "frac_alive"}
    latent_frequency(sae, acts)        # [d_sae] fraction of rows on which each latent fires
"""

from __future__ import annotations

import numpy as np
import torch

from tdsae.validation import check_count


def _batches(acts, batch_size: int, device: torch.device):
    """acts [n, d_in] (torch tensor or numpy array) as float32 [<=batch_size, d_in] blocks on device."""
    if acts.shape[0] == 0:
        raise ValueError("activations have no rows")
    for start in range(0, acts.shape[0], batch_size):
        block = acts[start:start + batch_size]
        block = block if isinstance(block, torch.Tensor) else torch.from_numpy(np.array(block, dtype=np.float32))
        yield block.to(device, torch.float32)


@torch.no_grad()
def reconstruction_metrics(sae, acts, batch_size: int = 4096) -> dict[str, float]:
    """Reconstruction quality of sae on acts [n, d_in], as SAELens run_evals defines it.

    mse: mean over rows of the squared error summed over d_in (SAELens's training and eval
    convention, not the per-element mean). explained_variance: 1 - sum of squared errors / sum of
    squared deviations from the mean row (SAELens's ExplainedVarianceCalculator; sums in float64).
    l0: mean number of non-zero latents per row. frac_alive: fraction of latents non-zero on at
    least one row (SAEBench). Returns a dict of floats with those keys.
    """
    batch_size = check_count(batch_size, "batch_size")
    width = np.shape(acts)[-1] if np.ndim(acts) == 2 else None
    if width != sae.cfg.d_in:
        raise ValueError(f"activations of shape {tuple(np.shape(acts))} do not fit an SAE reading d_in={sae.cfg.d_in}: "
                         f"expected [n, {sae.cfg.d_in}]")
    n, sse, sum_sq, l0 = 0, 0.0, 0.0, 0.0
    sum_x = torch.zeros(sae.cfg.d_in, dtype=torch.float64)
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool, device=sae.device)
    for x in _batches(acts, batch_size, sae.device):
        latents = sae.encode(x)
        recon = sae.decode(latents).float()
        active = latents != 0
        sse += float((recon - x).double().pow(2).sum())
        sum_sq += float(x.double().pow(2).sum())
        sum_x += x.double().sum(0).cpu()
        l0 += float(active.sum())
        fired |= active.any(0)
        n += x.shape[0]
    total_variance = sum_sq - float((sum_x ** 2).sum()) / n  # sum over rows of ||x - mean||^2
    explained = 1.0 - sse / total_variance if total_variance > 0 else float(sse == 0)
    return {"mse": sse / n, "explained_variance": explained, "l0": l0 / n, "frac_alive": float(fired.float().mean())}


@torch.no_grad()
def latent_frequency(sae, acts, batch_size: int = 4096) -> torch.Tensor:
    """Fraction of rows of acts [n, d_in] on which each latent is non-zero -> [d_sae] float (on the CPU)."""
    counts = torch.zeros(sae.cfg.d_sae, dtype=torch.float64, device=sae.device)
    for x in _batches(acts, batch_size, sae.device):
        counts += (sae.encode(x) != 0).sum(0).double()
    return (counts / acts.shape[0]).float().cpu()
