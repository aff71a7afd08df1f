"""Sound in and out: reading and writing clips, spectrogram features, spectral distances."""
