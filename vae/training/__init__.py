"""Training: stage 1 (the VAE) and stage 2 (sharpening against a critic), on one process or
many."""
