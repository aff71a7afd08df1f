"""The networks (the VAE, the critic), their losses and prior, and checkpoint folders on disk."""
