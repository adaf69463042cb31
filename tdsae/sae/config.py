"""How an SAE is optimised: SAETrainingConfig, read by the trainer (tdsae.sae.training) and its gradient
step (tdsae.sae.gradients)."""

from __future__ import annotations

from dataclasses import dataclass

from tdsae.validation import check_bf16_choice, check_count, check_int, check_number, check_seed


@dataclass(frozen=True)
class SAETrainingConfig:
    """How an SAE is optimised (defaults: the paper's settings, SAELens's where the paper is silent)."""

    l1_coefficient: float = 1e-5  # standard: beta, weight of mean_batch sum_j latent_j ||W_dec_j|| (paper: 1e-5);
    #   with normalize, in units of the normalised acts, where ~1 is typical (see tests/test_sae.py)
    lr: float = 1e-4  # constant Adam learning rate, no warm-up (paper: 1e-4)
    batch_size: int = 256  # rows per step; the last batch of an epoch may be smaller (paper: 256)
    epochs: int = 30  # passes over the activations, each in a fresh seeded order (paper: 30)
    adam_betas: tuple = (0.9, 0.999)  # Adam moment decays (torch and SAELens defaults, as the paper)
    seed: int = 0  # initial weights and batch order
    bf16: bool | None = None  # True: encoder matmul in bf16 with fp32 master weights, fp32 everywhere else; False:
    #   all fp32; None: bf16 where the device runs it natively (tdsae.runtime.matmul_precision), else fp32
    normalize: bool = True  # train on acts * c with E||x c|| = sqrt(d_in) (SAELens "expected_average_only_in"); c is
    #   estimated from all of acts and folded into the weights at the end, so the SAE reads raw activations
    center: bool = False  # start b_dec at the mean activation and set the normalisation scale from the spread of
    #   acts around that mean (not from their raw norm): for residual streams with a large constant offset, which
    #   b_dec then carries for free (SAELens starts b_dec at 0 and scales by raw norms, as center=False does)
    aux_k_coefficient: float = 1.0  # topk: weight of the AuxK loss (SAELens TopKTrainingSAEConfig.aux_loss_coefficient)
    dead_steps: int = 1000  # topk: steps without firing after which AuxK treats a latent as dead (SAELens
    #   SAETrainerConfig.dead_feature_window); also the window of the logged dead_latents count
    max_grad_norm: float | None = 1.0  # clip the global gradient norm, as SAELens's SAETrainer always does at 1.0;
    #   None: no clipping
    decoder_init_norm: float | None = 0.1  # initial W_dec row norm (SAELens TrainingSAEConfig default)
    sparse_below: float | None = None  # standard: use the sparse decoder when fewer than this fraction of
    #   (row, latent) pairs are active; None: SPARSE_BELOW's value for the device and dtype (always dense on CUDA)
    log_every: int = 50  # steps averaged into one row of the log; the device is read only then

    def __post_init__(self):
        for name in ("batch_size", "epochs", "log_every"):
            check_count(getattr(self, name), name)
        check_int(self.dead_steps, "dead_steps", 0)
        check_seed(self.seed)
        check_bf16_choice(self.bf16)
        check_number(self.lr, "lr", low=0, low_open=True)
        check_number(self.l1_coefficient, "l1_coefficient", low=0)
        check_number(self.aux_k_coefficient, "aux_k_coefficient", low=0)
        betas = self.adam_betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {betas!r}")
        for beta in betas:
            check_number(beta, "adam_betas", low=0, high=1, high_open=True)
        for name in ("max_grad_norm", "decoder_init_norm"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name, low=0, low_open=True)
        if self.sparse_below is not None:
            check_number(self.sparse_below, "sparse_below", low=0, high=1)
        for name in ("normalize", "center"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
