"""The neural phase: a network that turns features into audio in one pass, and its training.

Public modules (what code outside this package may import):
- ``network``: ``Vocoder``, ``VocoderConfig``, ``load_vocoder``, ``save_vocoder``,
  ``griffin_lim``.
- ``training``: ``train_vocoder``, ``VocoderTraining``.
"""

__all__ = ["network", "training"]
