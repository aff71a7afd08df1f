"""Sound in and out: reading and writing clips, spectrogram features, spectral distances.

Public modules (what code outside this package may import):
- ``io``: ``read_audio``, ``write_wav``, ``wav_bytes``, ``fit_length``, ``AudioError``.
- ``features``: ``FeatureConfig``, ``FEATURE_TYPES``, ``PRESETS``, ``waveform_to_features``,
  ``features_to_waveform`` (Griffin-Lim), ``stft_window``, ``reference_magnitude``.
- ``metrics``: ``clip_metrics``, ``spectral_convergence``, ``log_spectral_distance``.
- ``analysis``: ``resample_each`` and ``linear_features``, the same numbers in numpy alone,
  so preprocessing's worker processes never import torch.

Internal: ``wav_header`` (RIFF headers read by hand, behind ``io``).
"""

__all__ = ["analysis", "features", "io", "metrics"]
