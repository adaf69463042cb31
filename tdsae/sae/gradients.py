"""The fast gradient step of tdsae.sae.training: dense encoder, sparse decoder, fused Adam.

Only the encoder matmul is dense. Everything after it touches active latents only: a latent whose
ReLU (or TopK) output is zero passes no gradient to its pre-activation, so the decoder product, the
decoder gradient and the encoder-weight gradient are sparse products over the active (row, latent)
pairs, and Adam then updates every weight exactly as dense Adam would. Below SPARSE_BELOW active
fraction the sparse path is used; denser batches (early training, weak sparsity) take dense matmuls.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
import torch.nn.functional as F

from tdsae.runtime import matmul_precision
from tdsae.sae.config import SAETrainingConfig
from tdsae.sae.model import DTYPES, SAE

# Active fraction below which the sparse decoder beats dense matmuls, measured on a 2-core AMX CPU at
# d_in 1024 x d_sae 8192 (benchmarks/sae_training.py). On CUDA dense tensor-core matmuls win at these sizes.
SPARSE_BELOW = {("cpu", torch.bfloat16): 0.05, ("cpu", torch.float32): 0.15}


class _Codes:
    """Active (row, latent) pairs of a [batch, d_sae] code as CSR, plus the CSR of its transpose."""

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, d_sae: int):
        batch, nnz, device = crow.numel() - 1, col.numel(), col.device
        self.crow, self.col, self.shape = crow, col, (batch, d_sae)
        row = torch.repeat_interleave(torch.arange(batch, device=device), crow.diff(), output_size=nnz)
        self.perm = torch.argsort(col, stable=True)  # stable: rows stay sorted within each latent
        self.t_col = row[self.perm]
        self.t_crow = torch.zeros(d_sae + 1, dtype=crow.dtype, device=device)
        self.t_crow[1:] = _count(col, d_sae).cumsum(0)

    def decode(self, values: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """Sparse codes times W [d_sae, d] -> [batch, d]."""
        return F.embedding_bag(self.col, W, self.crow, per_sample_weights=values, mode="sum", include_last_offset=True)

    def sample_dot(self, G: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """<G[row], W[latent]> for every active pair, G [batch, d], W [d_sae, d] -> [nnz]."""
        pattern = torch.sparse_csr_tensor(self.crow, self.col, torch.zeros_like(self.col, dtype=G.dtype),
                                          self.shape, check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, G, W.T, beta=0).values()

    def add_transposed(self, values: torch.Tensor, Y: torch.Tensor, out: torch.Tensor, beta: float) -> None:
        """out = beta * out + codes.T @ Y, Y [batch, d], out [d_sae, d], written in place."""
        codes_t = torch.sparse_csr_tensor(self.t_crow, self.t_col, values[self.perm], (self.shape[1], self.shape[0]),
                                          check_invariants=False)
        torch.addmm(out, codes_t, Y, beta=beta, out=out)

    def per_latent(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of values over rows, per latent -> [d_sae]."""
        return torch.zeros(self.shape[1], dtype=values.dtype, device=values.device).index_add_(0, self.col, values)


def _count(index: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of 0..size-1 occurs in index -> [size] int64 (bincount reads its max on CUDA; this does not)."""
    return torch.zeros(size, dtype=torch.int64, device=index.device).index_add_(0, index, torch.ones_like(index))


def _fixed_codes(indices: torch.Tensor, d_sae: int) -> _Codes:
    """Codes with the same number of entries per row, from indices [batch, k] (sorted per row)."""
    batch, k = indices.shape
    crow = torch.arange(0, batch * k + 1, k, device=indices.device)
    return _Codes(crow, indices.flatten(), d_sae)


class TrainingState:
    """fp32 master weights in the trainer's layout, their gradients, Adam, and latent firing counters."""

    def __init__(self, sae: SAE, config: SAETrainingConfig, device: str):
        fp32 = dict(device=device, dtype=torch.float32)
        self.cfg, self.config, self.device = sae.cfg, config, device
        # W_enc is kept transposed ([d_sae, d_in], like W_dec) so both weight gradients are row-sparse products
        self.params = {"W_enc_t": sae.W_enc.detach().T.to(**fp32, copy=True).contiguous(),
                       "b_enc": sae.b_enc.detach().to(**fp32, copy=True),
                       "W_dec": sae.W_dec.detach().to(**fp32, copy=True).contiguous(),
                       "b_dec": sae.b_dec.detach().to(**fp32, copy=True)}
        for tensor in self.params.values():
            tensor.requires_grad_(True)
            tensor.grad = torch.zeros_like(tensor)  # reused every step: no fresh [d_sae, d_in] pages per step
        if config.bf16 is None:  # train_sae resolves it; this path serves compute_gradients
            config = dataclasses.replace(config, bf16=matmul_precision(torch.device(device).type).bf16)
            self.config = config
        self.compute_dtype = torch.bfloat16 if config.bf16 else torch.float32
        self.low, self.product = {}, None  # bf16 copies of weights (refreshed each step) and a product buffer
        if config.sparse_below is not None:
            self.sparse_below = config.sparse_below
        else:
            self.sparse_below = SPARSE_BELOW.get((torch.device(device).type, self.compute_dtype), 0.0)
        self.since_fired = torch.zeros(sae.cfg.d_sae, **fp32)
        self.steps_done = 0
        self.fused = torch.device(device).type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(list(self.params.values()), lr=config.lr, betas=tuple(config.adam_betas),
                                          fused=self.fused or None, foreach=None if self.fused else True)

    def step(self) -> None:
        """Clip the global gradient norm to max_grad_norm (as torch's clip_grad_norm_) and take an Adam step."""
        max_norm = self.config.max_grad_norm
        if max_norm is not None:
            params = list(self.params.values())
            total = torch.nn.utils.get_total_norm([t.grad for t in params], foreach=True)
            if self.fused:
                # Fused Adam divides the gradients by grad_scale as it reads them (the contract GradScaler uses):
                # clip_grad_norm_'s result without another pass over the gradients
                scale = torch.clamp((total + 1e-6) / max_norm, min=1.0)
                # on the CPU reading the scale costs no sync, and an unclipped step (scale exactly 1, dividing
                # by which changes nothing) then skips the division, ~15% of Adam's time at d_sae 8192
                self.optimizer.grad_scale = None if self.device == "cpu" and float(scale) == 1.0 else scale
            else:
                torch.nn.utils.clip_grads_with_norm_(params, max_norm, total, foreach=True)
        self.optimizer.step()
        self.steps_done += 1

    def dead_mask(self) -> torch.Tensor | None:
        """Latents silent for more than dead_steps steps, or None while none can be (no device read)."""
        if self.steps_done <= self.config.dead_steps:
            return None
        return self.since_fired > self.config.dead_steps

    def low_copy(self, name: str, refresh: bool = True) -> torch.Tensor:
        """The weight in the compute dtype, copied from the fp32 master (refresh) into a buffer kept across steps."""
        master = self.params[name].detach()
        if self.compute_dtype == torch.float32:
            return master
        if name not in self.low:
            self.low[name], refresh = torch.empty_like(master, dtype=self.compute_dtype), True
        return self.low[name].copy_(master) if refresh else self.low[name]

    def matmul(self, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """a @ b in the compute dtype (operands cast if needed), returned or written into out in fp32."""
        if self.compute_dtype == torch.float32:
            return torch.mm(a, b, out=out)
        a, b = a.to(self.compute_dtype), b.to(self.compute_dtype)
        if out is None:
            return torch.mm(a, b).float()
        if self.product is None:  # one bf16 [d_sae, d_in] buffer, so weight gradients cost no fresh pages
            self.product = torch.empty_like(out, dtype=self.compute_dtype)
        return out.copy_(torch.mm(a, b, out=self.product))

    def encoder_pre(self, xc: torch.Tensor) -> torch.Tensor:
        """Pre-activations [batch, d_sae] in fp32 from the bf16 (or fp32) encoder matmul."""
        return self.matmul(xc, self.low_copy("W_enc_t").T).add_(self.params["b_enc"].detach())


@torch.no_grad()
def gradient_step(state: TrainingState, x: torch.Tensor, dead: torch.Tensor | None) -> torch.Tensor:
    """Write the gradients of SAELens's loss on x [batch, d_in] into state's .grad; return [loss, mse, sparsity, l0]."""
    p = {name: tensor.detach() for name, tensor in state.params.items()}
    g = {name: tensor.grad for name, tensor in state.params.items()}
    cfg, batch = state.cfg, x.shape[0]
    xc = x - p["b_dec"] if cfg.apply_b_dec_to_input else x
    pre = state.encoder_pre(xc)  # [batch, d_sae] fp32
    norms = p["W_dec"].norm(dim=-1)  # [d_sae]
    if cfg.architecture == "topk":
        score = pre * norms if cfg.rescale_acts_by_decoder_norm else pre
        indices = torch.topk(score, cfg.k, dim=-1, sorted=False).indices.sort(dim=-1).values
        kept = pre.gather(-1, indices).flatten()
        # relu(pre * n) / n == relu(pre): with rescaling, the norms only choose which latents are kept
        codes, values = _fixed_codes(indices, cfg.d_sae), kept.relu()
        err, mse = _sparse_decoder(state, p, g, codes, values, kept > 0, x, xc, None)
        sparsity = _add_auxk_gradients(state, p, g, xc, pre, score, -err, dead)
        fired, l0 = codes.per_latent((values > 0).float()) > 0, (values > 0).sum() / batch
    else:
        active = pre > 0
        # The active fraction picks the path (sparse_below 0 skips the count: CUDA). A count costs a tenth of
        # nonzero(), which is computed only for batches that take the sparse path.
        if state.sparse_below > 0 and int(active.sum()) < state.sparse_below * active.numel():
            flat = active.view(-1).nonzero().squeeze(1)
            row, col = flat.div(cfg.d_sae, rounding_mode="floor"), flat.remainder(cfg.d_sae)
            crow = torch.zeros(batch + 1, dtype=torch.int64, device=x.device)
            crow[1:] = _count(row, batch).cumsum(0)
            codes, values = _Codes(crow, col, cfg.d_sae), pre.view(-1)[flat]
            err, mse = _sparse_decoder(state, p, g, codes, values, None, x, xc, norms)
            sparsity = state.config.l1_coefficient * (values * norms[col]).sum() / batch
            fired = codes.t_crow.diff() > 0
            l0 = torch.full((), flat.numel() / batch, device=x.device)
        else:
            err, mse, sparsity, per_latent = _dense_decoder(state, p, g, pre, active, x, xc, norms)
            fired, l0 = per_latent > 0, active.sum() / batch  # relu(pre) sums to > 0 exactly where pre > 0 somewhere
    torch.mul(err.sum(0), 2 / batch, out=g["b_dec"])
    if cfg.apply_b_dec_to_input:  # through x - b_dec: -sum_b g_pre_b @ W_enc.T, with the encoder's own weights
        g["b_dec"].sub_((g["b_enc"].to(state.compute_dtype) @ state.low_copy("W_enc_t", refresh=False)).float())
    state.since_fired.add_(1).masked_fill_(fired, 0)
    return torch.stack([mse + sparsity, mse, sparsity, l0])


def _sparse_decoder(state, p, g, codes, values, passes, x, xc, norms) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder, its gradients and the encoder's, over active pairs only; norms given: add the L1 term.

    Writes g's W_dec, W_enc_t and b_enc; returns (recon - x [batch, d_in], mse).
    """
    batch = x.shape[0]
    err = codes.decode(values, p["W_dec"]) + p["b_dec"] - x
    g_recon = err * (2 / batch)
    g_values = codes.sample_dot(g_recon, p["W_dec"])
    codes.add_transposed(values, g_recon, g["W_dec"], beta=0.0)
    if norms is not None:
        beta = state.config.l1_coefficient
        g_values += (beta / batch) * norms[codes.col]
        # d/dW_dec_j of beta * mean_b a_bj ||W_dec_j|| = beta * (sum_b a_bj / batch) * W_dec_j / ||W_dec_j||
        scale = torch.where(norms > 0, codes.per_latent(values) * (beta / batch) / norms, 0.0)
        g["W_dec"].addcmul_(p["W_dec"], scale[:, None])
    if passes is not None:
        g_values *= passes
    codes.add_transposed(g_values, xc, g["W_enc_t"], beta=0.0)
    g["b_enc"].copy_(codes.per_latent(g_values))
    return err, err.pow(2).sum() / batch


def _dense_decoder(state, p, g, pre, active, x, xc, norms) -> tuple[torch.Tensor, ...]:
    """The standard SAE's decoder and gradients with dense matmuls (in the compute dtype), for dense batches.

    Writes g's W_dec, W_enc_t and b_enc; returns (recon - x [batch, d_in], mse, l1 loss, latent sums [d_sae]).
    """
    batch, beta = x.shape[0], state.config.l1_coefficient
    latents = pre.relu()  # [batch, d_sae]
    low = latents.to(state.compute_dtype)  # cast once, used twice
    W_dec = state.low_copy("W_dec")
    err = state.matmul(low, W_dec).add_(p["b_dec"]).sub_(x)
    g_recon = (err * (2 / batch)).to(state.compute_dtype)
    g_pre = state.matmul(g_recon, W_dec.T).add_(norms * (beta / batch)).mul_(active)
    state.matmul(low.T, g_recon, out=g["W_dec"])
    per_latent = latents.sum(0)
    scale = torch.where(norms > 0, per_latent * (beta / batch) / norms, 0.0)
    g["W_dec"].addcmul_(p["W_dec"], scale[:, None])
    state.matmul(g_pre.T, xc, out=g["W_enc_t"])
    g["b_enc"].copy_(g_pre.sum(0))
    return err, err.pow(2).sum() / batch, beta * (per_latent @ norms) / batch, per_latent


def _add_auxk_gradients(state, p, g, xc, pre, score, residual, dead) -> torch.Tensor:
    """Add the AuxK loss's gradients (SAELens calculate_topk_aux_loss) to g; return the loss (0 without dead latents).

    SAELens takes the top min(d_in // 2, n_dead) dead latents; this takes a fixed d_in // 2 and zeroes the
    entries that are not dead, which is the same loss without reading n_dead on the host.
    """
    if dead is None or state.cfg.d_in < 2:  # SAELens's k_aux = d_in // 2 would be 0
        return pre.new_zeros(())
    cfg, batch = state.cfg, xc.shape[0]
    k_aux = min(cfg.d_in // 2, cfg.d_sae)
    scale = (dead.sum() / (cfg.d_in // 2)).clamp(max=1.0) * state.config.aux_k_coefficient
    top = torch.topk(torch.where(dead, score, -math.inf), k_aux, dim=-1, sorted=False)
    order = top.indices.argsort(dim=-1)
    indices, valid = top.indices.gather(-1, order), top.values.gather(-1, order).isfinite().flatten()
    codes = _fixed_codes(indices, cfg.d_sae)
    coef = torch.where(valid, pre.gather(-1, indices).flatten(), 0.0)  # (pre * n) / n: the decoder sees pre
    diff = codes.decode(coef, p["W_dec"]) - residual  # residual: x - recon, a constant here
    g_aux = diff * (2 * scale / batch)
    codes.add_transposed(coef, g_aux, g["W_dec"], beta=1.0)
    g_coef = codes.sample_dot(g_aux, p["W_dec"]) * valid
    codes.add_transposed(g_coef, xc, g["W_enc_t"], beta=1.0)
    g["b_enc"].add_(codes.per_latent(g_coef))
    return scale * diff.pow(2).sum() / batch


def compute_gradients(sae: SAE, x: torch.Tensor, config: SAETrainingConfig,
                      dead_mask: torch.Tensor | None = None) -> tuple[dict, dict]:
    """One step's gradients of the fast path, in SAELens layout, for checking against training_loss.

    Args: x [batch, d_in] (already normalised); dead_mask [d_sae] bool (topk AuxK) or None.
    Returns: ({"W_enc": [d_in, d_sae], "b_enc", "W_dec", "b_dec"}, {"loss", "mse_loss", "sparsity_loss", "l0"}).
    """
    state = TrainingState(sae, config, str(sae.device))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        stats = gradient_step(state, x.to(sae.device, torch.float32), dead_mask)
    grads = {name.removesuffix("_t"): t.grad.T if name.endswith("_t") else t.grad for name, t in state.params.items()}
    return grads, dict(zip(("loss", "mse_loss", "sparsity_loss", "l0"), stats.tolist()))


@torch.no_grad()
def write_back(state: TrainingState, sae: SAE, scale: float) -> None:
    """Copy the master weights into sae, fold the activation scale and (where allowed) the W_dec norms."""
    p = state.params
    sae.to(state.device, torch.float32)  # fold in fp32, then cast to the config's dtype
    for name, value in (("W_enc", p["W_enc_t"].T), ("b_enc", p["b_enc"]), ("W_dec", p["W_dec"]), ("b_dec", p["b_dec"])):
        getattr(sae, name).copy_(value.detach())
    sae.fold_activation_scale(scale)
    if sae.cfg.architecture == "standard" or sae.cfg.rescale_acts_by_decoder_norm:
        sae.fold_W_dec_norm()
    sae.to(DTYPES[sae.cfg.dtype])
