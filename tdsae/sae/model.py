"""The sparse autoencoder: SAELens v6 parameter names, shapes and forward passes.

    sae = SAE(SAEConfig(d_in=128, d_sae=512), seed=0)
    latents = sae.encode(acts)      # [batch, d_sae]
    recon = sae.decode(latents)     # [batch, d_in]

``standard`` is ReLU(x W_enc + b_enc) trained with an L1 penalty (the paper's SAE); ``topk``
keeps the k largest pre-activations. Both match SAELens's inference SAEs to float precision, so
an SAE saved here loads there and back (tdsae.sae.saelens_format).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdsae.validation import check_count, check_number, check_sae_architecture, check_seed

# SAELens's normalize_activations values that act as the identity at inference; "expected_average_only_in"
# is a training-time scale that a finished SAE has folded into its weights (or never applied at inference).
NORMALIZATIONS = ("none", "expected_average_only_in")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class SAEConfig:
    """Shape, architecture and provenance of an SAE (the fields SAELens keeps in cfg.json)."""

    d_in: int  # width of the activations the SAE reads (the model's d_model at that site)
    d_sae: int  # number of latents
    architecture: str = "standard"  # "standard" (ReLU + L1, the paper's) or "topk"
    k: int | None = None  # topk only: latents kept per input, 1 <= k <= d_sae; None for standard
    rescale_acts_by_decoder_norm: bool | None = None  # topk only: rank pre-activations times decoder row norms
    #   (SAELens's TopK training default); None means True for topk, False for standard
    apply_b_dec_to_input: bool = True  # subtract b_dec from the input before encoding (SAELens default)
    normalize_activations: str = "none"  # SAELens's string; our trainer folds its scale in, so saved SAEs say "none"
    dtype: str = "float32"  # parameter dtype, a key of DTYPES
    hook_name: str | None = None  # TransformerLens-style site, e.g. "blocks.2.hook_resid_post"
    hf_hook_name: str | None = None  # HF/nnsight module path of the same site, e.g. "model.layers.2"
    model_name: str | None = None  # the model the activations came from (hub id or local name)

    def __post_init__(self):
        for name in ("d_in", "d_sae"):
            setattr(self, name, check_count(getattr(self, name), name))
        check_sae_architecture(self.architecture, self.k, self.d_sae)
        if self.architecture == "topk":
            if self.rescale_acts_by_decoder_norm is None:
                self.rescale_acts_by_decoder_norm = True
        else:
            if self.rescale_acts_by_decoder_norm:
                raise ValueError("rescale_acts_by_decoder_norm is only used by the topk architecture")
            self.rescale_acts_by_decoder_norm = False
        if self.normalize_activations not in NORMALIZATIONS:
            raise ValueError(f"normalize_activations={self.normalize_activations!r} is not supported; "
                             f"choose one of: {', '.join(NORMALIZATIONS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of: {', '.join(DTYPES)}")


class SAE(nn.Module):
    """A standard (ReLU) or TopK sparse autoencoder with SAELens's parameters and forward pass.

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in]. Also the
    SAEBench custom-SAE surface: encode/decode/forward, cfg.d_in/cfg.d_sae, device, dtype.
    """

    def __init__(self, cfg: SAEConfig, seed: int | None = 0, decoder_init_norm: float | None = 0.1):
        """Initialise as SAELens v6 training SAEs do, from a local generator seeded with seed.

        W_dec rows are kaiming-uniform directions rescaled to norm decoder_init_norm (Anthropic's
        April 2024 heuristic; None keeps the kaiming scale), W_enc = W_dec.T, both biases zero.
        seed None leaves the weights uninitialised, for a loader that overwrites them.
        """
        super().__init__()
        if not isinstance(cfg, SAEConfig):
            raise ValueError(f"cfg must be an SAEConfig, got {type(cfg).__name__}")
        if seed is not None:
            seed = check_seed(seed)
        if decoder_init_norm is not None:
            decoder_init_norm = check_number(decoder_init_norm, "decoder_init_norm", low=0, low_open=True)
        self.cfg = cfg
        w_dec = torch.empty(cfg.d_sae, cfg.d_in)
        if seed is not None:
            nn.init.kaiming_uniform_(w_dec, generator=torch.Generator().manual_seed(seed))
            if decoder_init_norm is not None:
                w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True) * decoder_init_norm
        dtype = DTYPES[cfg.dtype]
        self.W_enc = nn.Parameter(w_dec.T.contiguous().to(dtype))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(w_dec.to(dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype))

    @property
    def device(self) -> torch.device:
        return self.W_enc.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_enc.dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents [..., d_sae] of activations x [..., d_in] (cast to the SAE's dtype)."""
        if x.shape[-1] != self.cfg.d_in:
            raise ValueError(f"activations have width {x.shape[-1]} but the SAE reads d_in={self.cfg.d_in}")
        x = x.to(self.dtype)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc  # [..., d_sae]
        if self.cfg.architecture == "standard":
            return torch.relu(pre)
        if self.cfg.rescale_acts_by_decoder_norm:
            pre = pre * self.W_dec.norm(dim=-1)
        top = torch.topk(pre, k=self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, top.indices, top.values.relu())

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Reconstruction [..., d_in] of latents [..., d_sae]."""
        if self.cfg.rescale_acts_by_decoder_norm:
            latents = latents * (1 / self.W_dec.norm(dim=-1))
        return latents @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction [..., d_in] of activations x [..., d_in]."""
        return self.decode(self.encode(x))

    @torch.no_grad()
    def fold_W_dec_norm(self) -> torch.Tensor:
        """Rescale W_dec rows to unit norm, scaling W_enc columns and b_enc to keep the same function.

        Returns the old row norms [d_sae]. A topk SAE that ranks raw pre-activations
        (rescale_acts_by_decoder_norm False) cannot be folded: its ranking would change.
        """
        if self.cfg.architecture == "topk" and not self.cfg.rescale_acts_by_decoder_norm:
            raise ValueError("folding W_dec norms would change which latents a topk SAE keeps when "
                             "rescale_acts_by_decoder_norm is False")
        norms = self.W_dec.norm(dim=-1).clamp(min=1e-8)
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms[None, :])
        self.b_enc.mul_(norms)
        return norms

    @torch.no_grad()
    def fold_activation_scale(self, scale: float) -> None:
        """Make an SAE trained on acts * scale act on raw acts (SAELens's fold_activation_norm_scaling_factor)."""
        self.W_enc.mul_(scale)
        self.W_dec.div_(scale)
        self.b_dec.div_(scale)
        self.cfg.normalize_activations = "none"


def training_loss(sae: SAE, x: torch.Tensor, l1_coefficient: float = 1e-5, aux_k_coefficient: float = 1.0,
                  dead_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """SAELens v6's training loss of sae on x [batch, d_in], dense and differentiable.

    mse_loss: squared error summed over d_in, mean over the batch. standard: l1_loss =
    l1_coefficient * mean over the batch of sum_j latent_j * ||W_dec_j||. topk: auxk_loss, the
    dead latents (dead_mask [d_sae] bool) reconstructing the residual. The fast trainer
    (tdsae.sae.training) computes the same gradients sparsely; the tests hold it to this.
    """
    cfg = sae.cfg
    xc = x - sae.b_dec if cfg.apply_b_dec_to_input else x
    pre = xc @ sae.W_enc + sae.b_enc  # [batch, d_sae]
    norms = sae.W_dec.norm(dim=-1)  # [d_sae]
    if cfg.architecture == "standard":
        latents = torch.relu(pre)
        mse = (latents @ sae.W_dec + sae.b_dec - x).pow(2).sum(-1).mean()
        l1 = l1_coefficient * (latents * norms).norm(p=1, dim=-1).mean()
        return {"loss": mse + l1, "mse_loss": mse, "l1_loss": l1}
    hidden = pre * norms if cfg.rescale_acts_by_decoder_norm else pre
    top = torch.topk(hidden, cfg.k, dim=-1, sorted=False)
    latents = torch.zeros_like(hidden).scatter(-1, top.indices, top.values.relu())
    unit = 1 / norms if cfg.rescale_acts_by_decoder_norm else torch.ones_like(norms)
    recon = (latents * unit) @ sae.W_dec + sae.b_dec
    mse = (recon - x).pow(2).sum(-1).mean()
    aux = mse.new_zeros(())
    n_dead = 0 if dead_mask is None else int(dead_mask.sum())
    if n_dead:
        k_aux = cfg.d_in // 2
        scale = min(n_dead / k_aux, 1.0)
        dead_top = torch.where(dead_mask[None], hidden, -torch.inf).topk(min(k_aux, n_dead), sorted=False)
        aux_acts = torch.zeros_like(hidden).scatter(-1, dead_top.indices, dead_top.values)
        residual = (x - recon).detach()
        aux = aux_k_coefficient * scale * ((aux_acts * unit) @ sae.W_dec - residual).pow(2).sum(-1).mean()
    return {"loss": mse + aux, "mse_loss": mse, "auxk_loss": aux}
