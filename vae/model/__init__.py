"""The networks (the VAE, the critic), their losses and prior, and checkpoint folders on disk.

Public modules (what code outside this package may import):
- ``conv_vae``: ``ModelConfig``, ``ConvVAE``, ``vae_loss``.
- ``checkpoints``: ``Checkpoint``, ``save_checkpoint``, ``load_checkpoint``,
  ``CheckpointError``, ``read_metrics``, ``read_latents``.
- ``prior``: ``LatentPrior``, ``fit_prior``, ``read_prior``.
- ``critic``: ``SpectrogramCritic``, ``critic_loss``, ``generator_loss``.
- ``spectral_loss``: ``multiscale_spectral``.
"""

__all__ = ["checkpoints", "conv_vae", "critic", "prior", "spectral_loss"]
