"""Sparse autoencoders: SAELens-compatible models, a fast trainer, reconstruction metrics, the SAELens folder format.

    trained = train_sae(acts, SAEConfig(d_in=128, d_sae=512), SAETrainingConfig(l1_coefficient=1.0))
    reconstruction_metrics(trained.sae, held_out)   # {"mse", "explained_variance", "l0", "frac_alive"}
    save_sae(trained.sae, "artifacts/sae/layer2")    # loads with sae_lens.SAE.load_from_disk too
"""

from tdsae.sae.metrics import latent_frequency, reconstruction_metrics
from tdsae.sae.model import ARCHITECTURES, SAE, SAEConfig, training_loss
from tdsae.sae.saelens_format import load_sae, save_sae
from tdsae.sae.gradients import compute_gradients
from tdsae.sae.training import SAETrainingConfig, TrainedSAE, train_sae

__all__ = [
    "ARCHITECTURES", "SAE", "SAEConfig", "SAETrainingConfig", "TrainedSAE", "compute_gradients", "latent_frequency",
    "load_sae", "reconstruction_metrics", "save_sae", "train_sae", "training_loss",
]
