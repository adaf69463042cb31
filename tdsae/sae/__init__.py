"""Sparse autoencoders: SAELens-compatible models, a fast trainer, reconstruction metrics, the SAELens folder format.

    trained = train_sae(acts, SAEConfig(d_in=128, d_sae=512), SAETrainingConfig(l1_coefficient=1.0))
    reconstruction_metrics(trained.sae, held_out)   # {"mse", "explained_variance", "l0", "frac_alive"}
    save_sae(trained.sae, "artifacts/sae/layer2")    # loads with sae_lens.SAE.load_from_disk too
"""

from tdsae.sae.config import SAETrainingConfig
from tdsae.sae.gradients import compute_gradients
from tdsae.sae.metrics import latent_frequency, reconstruction_metrics
from tdsae.sae.model import SAE, SAEConfig, training_loss
from tdsae.sae.saelens_format import load_sae, save_sae
from tdsae.sae.sweep import L1_GRID, choose_l1, mean_explained_variance
from tdsae.sae.training import TrainedSAE, train_sae
from tdsae.validation import ARCHITECTURES

__all__ = [
    "ARCHITECTURES", "L1_GRID", "SAE", "SAEConfig", "SAETrainingConfig", "TrainedSAE", "choose_l1", "compute_gradients",
    "latent_frequency", "load_sae", "mean_explained_variance", "reconstruction_metrics", "save_sae", "train_sae",
    "training_loss",
]
