"""A checkpoint as an instrument: encode, decode, move through latent space, flat maps of it."""
