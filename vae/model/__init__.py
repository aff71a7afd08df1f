"""The networks (the VAE, the critic), their losses and prior, and checkpoint folders on disk.

Public modules (what code outside this package may import):
- ``conv_vae``: ``ModelConfig``, ``ConvVAE``, ``vae_loss``.
- ``losses``: ``Losses`` (the loss's terms by name), ``LossSettings`` (what weighs them).
- ``checkpoints``: ``Checkpoint``, ``save_checkpoint``, ``load_checkpoint``,
  ``CheckpointError``, ``read_metrics``, ``read_latents``.
- ``prior``: ``LatentPrior``, ``fit_prior``, ``read_prior``.
- ``critic``: ``SpectrogramCritic``, ``critic_loss``, ``generator_loss``.
- ``spectral_loss``: ``multiscale_spectral``.
"""

__all__ = ["checkpoints", "conv_vae", "critic", "losses", "prior", "spectral_loss"]
