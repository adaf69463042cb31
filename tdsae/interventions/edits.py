"""Edit SAE latents inside the forward pass, through nnsight: lesions, negative scaling, splicing.

An edit at residual layer ``l`` (0 = embeddings, l >= 1 = output of block l - 1) replaces that
layer's output h, at every token, by

    decode(edit(encode(h))) + (h - decode(encode(h)))        (keep_error=True)

so only the edited latents change: the SAE's reconstruction error is added back and the model
sees exactly its own activation wherever the edit does nothing (``factor=1`` is the identity to
float precision). ``keep_error=False`` with no latents edited splices in the plain reconstruction,
which is how ``ce_loss_score`` measures what an SAE loses.

This module and tdsae.activations.harvest are the only ones that open nnsight traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tdsae.models import check_edits, check_layer, is_remote, next_token_loss_terms, residual_sites, torch_module
from tdsae.play.dispatch import play_task
from tdsae.validation import check_count, check_int, check_latent_indices, check_number


@dataclass
class LatentEdit:
    """Scale chosen latents of one layer's SAE: 0 lesions them, -c scales them negatively."""

    layer: int  # residual layer whose output is edited (see module docstring)
    sae: Any  # a tdsae.sae.SAE trained on that layer
    latents: list = field(default_factory=list)  # latent indices to scale
    factor: float = 0.0  # multiplier of the chosen latents: 0 lesion, 1 identity, -c negative scaling
    keep_error: bool = True  # add back the SAE's reconstruction error (False: splice in the reconstruction)
    positions: torch.Tensor | None = None  # [batch, seq] bool: edit only these tokens (None: every token)

    def __post_init__(self):
        self.layer = check_int(self.layer, "layer", 0)  # the model's range is checked where a model is given
        if not hasattr(getattr(self.sae, "cfg", None), "d_sae"):
            raise ValueError(f"sae must be a tdsae.sae.SAE (with cfg.d_sae), got {type(self.sae).__name__}")
        self.latents = check_latent_indices(self.latents, self.sae.cfg.d_sae)
        self.factor = check_number(self.factor, "factor")

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        """The edited layer output. Args: h [batch, seq, d_model]. Returns: same shape and dtype.

        With keep_error, decode(z') + (h - decode(z)) is computed as h + (z' - z) W_dec over the
        edited latents only: the same number, but exactly h wherever those latents are silent.
        """
        acts = h.to(self.sae.W_enc.dtype)
        latents = self.sae.encode(acts)
        if self.keep_error:
            if not self.latents:
                return h
            chosen = latents[..., self.latents]  # [batch, seq, n_edited]
            delta = ((self.factor - 1.0) * chosen) @ self.sae.W_dec[self.latents]
            return (acts + delta * _mask(self.positions, h)).to(h.dtype)
        if self.latents:
            latents = latents.clone()
            latents[..., self.latents] = latents[..., self.latents] * self.factor
        spliced = self.sae.decode(latents)
        return (spliced if self.positions is None else torch.where(_mask(self.positions, h) > 0, spliced, acts)).to(h.dtype)


def _mask(positions: torch.Tensor | None, h: torch.Tensor):
    """positions [batch, seq] bool as a [batch, seq, 1] float multiplier on h's device (1.0 when None)."""
    return 1.0 if positions is None else positions[..., None].to(h.device, h.dtype if h.is_floating_point() else None)


def traced_output(model, edits, **inputs):
    """One forward pass with the edits applied, as the model's own output object (logits, cache).

    Args: model: a tdsae.models.load_model result; edits: LatentEdits (layers in any order);
    inputs: keyword arguments of the model's forward (input_ids, attention_mask, past_key_values, ...).
    """
    import nnsight

    edits = check_edits(model, edits)
    sites = residual_sites(model)
    with torch.no_grad(), model.trace(**inputs, remote=is_remote(model)):
        for edit in sorted(edits, key=lambda e: e.layer):  # nnsight needs modules in forward order
            sites[edit.layer].output = edit.apply(sites[edit.layer].output)
        output = nnsight.save(model.output)
    return output


class EditedModel:
    """A callable that looks to tdsae.play like a Hugging Face model, but runs every forward pass
    through nnsight with the edits applied (so the KV-cached lockstep play works unchanged)."""

    def __init__(self, model, edits):
        self.model, self.edits = model, check_edits(model, edits)
        self.module = torch_module(model)
        self.config = self.module.config

    def parameters(self):
        """The wrapped model's parameters (play reads their device)."""
        return self.module.parameters()

    def __call__(self, **inputs):
        return traced_output(self.model, self.edits, **inputs)


def play_with_edits(model, task, n_experiments: int, n_episodes: int, seed: int, n_random_episodes: int = 0,
                    edits=None, experiments_per_batch: int | None = None):
    """play_task with latents edited in every forward pass (transcripts or stories, as play_task chooses).

    Returns: tdsae.play.PlayResult. With no edits it equals play_task's result.
    """
    return play_task(model, task, n_experiments, n_episodes, seed, n_random_episodes,
                     forward=EditedModel(model, edits), experiments_per_batch=experiments_per_batch)


LOGIT_BYTES_PER_PASS = 2**29  # float32 logits one forward of ce_loss_score may hold: a 1,900-token story read by
# SmolLM2 (a 49,152-word vocabulary) makes 374 MB of them, and 32 stories at once were 12 GB, twice over


@torch.no_grad()
def ce_loss_score(model, sae, layer: int, input_ids: torch.Tensor, pad_id: int | None = None,
                  positions: torch.Tensor | None = None, logit_bytes: int = LOGIT_BYTES_PER_PASS) -> dict:
    """Fraction of next-token loss recovered when the SAE's reconstruction replaces layer ``layer``.

    ce_loss_score = (CE_zero - CE_sae) / (CE_zero - CE_clean), SAELens's definition: 1 means the
    splice costs nothing, 0 means it is as bad as zeroing the layer's output.
    Args: input_ids [batch, seq] right-padded with pad_id (padding is not scored); positions
    [batch, seq] bool: splice (and zero) only these tokens and score only the predictions made
    there, for an SAE trained on those tokens alone (None: every token); logit_bytes: the most float32
    logits one forward pass may produce (sequences are read that many at a time; at least one).
    Returns: {"ce_loss_score", "ce_clean", "ce_with_sae", "ce_zero_ablation"}.
    """
    layer = check_layer(model, layer)
    return ce_loss_scores(model, {layer: sae}, input_ids, pad_id, positions, logit_bytes)[layer]


@torch.no_grad()
def ce_loss_scores(model, saes: dict, input_ids: torch.Tensor, pad_id: int | None = None,
                   positions: torch.Tensor | None = None, logit_bytes: int = LOGIT_BYTES_PER_PASS) -> dict:
    """ce_loss_score of several SAEs ({layer: SAE}) on the same sequences, sharing the clean forward passes.

    Returns: {layer: ce_loss_score's dict}.
    """
    saes = {check_layer(model, layer): sae for layer, sae in saes.items()}
    logit_bytes = check_count(logit_bytes, "logit_bytes")
    module = torch_module(model)
    device = next(module.parameters()).device
    ids = input_ids.to(device)
    positions = None if positions is None else positions.to(device)
    vocab = module.get_output_embeddings().weight.shape[0]
    rows = max(1, logit_bytes // (4 * vocab * ids.shape[1]))
    sums = {key: [0.0, 0.0] for key in [("clean",)] + [(layer, kind) for layer in saes for kind in ("sae", "zero")]}

    def add(key, edits, chunk, where) -> None:  # loss sum and weight sum of one forward pass
        logits = traced_output(model, edits, input_ids=chunk, use_cache=False).logits
        total, count = next_token_loss_terms(logits[:, :-1], chunk, pad_id, None if where is None else where[:, :-1])
        sums[key] = [sums[key][0] + float(total), sums[key][1] + float(count)]

    for start in range(0, len(ids), rows):
        chunk = ids[start:start + rows]
        where = None if positions is None else positions[start:start + rows]
        add(("clean",), [], chunk, where)
        for layer, sae in saes.items():
            add((layer, "sae"), [LatentEdit(layer, sae, [], 1.0, keep_error=False, positions=where)], chunk, where)
            add((layer, "zero"), [_ZeroEdit(layer, where)], chunk, where)
    loss = {key: total / count if count > 0 else float("nan") for key, (total, count) in sums.items()}
    scores = {}
    for layer in saes:
        clean, spliced, zero = loss[("clean",)], loss[(layer, "sae")], loss[(layer, "zero")]
        spread = zero - clean
        scores[layer] = {"ce_loss_score": (zero - spliced) / spread if spread > 0 else float("nan"),
                         "ce_clean": clean, "ce_with_sae": spliced, "ce_zero_ablation": zero}
    return scores


@dataclass
class _ZeroEdit:
    """Zero a layer's output (the ablation baseline of ce_loss_score)."""

    layer: int
    positions: torch.Tensor | None = None  # [batch, seq] bool; None: every token

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        return h * (1.0 - _mask(self.positions, h))
