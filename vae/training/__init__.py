"""Training: stage 1 (the VAE) and stage 2 (sharpening against a critic), on one process or
many.

Public modules (what code outside this package may import):
- ``train``: ``train()``, the one call both faces make; ``TrainResult``.
- ``train_config``: ``TrainConfig``, ``OPTIONS`` (each option described with :mod:`vae.options`).
- ``model_options``: ``ModelOptions``, ``MODEL_OPTIONS``.
- ``sharpen``: ``sharpen()``, stage 2; ``sharpen_config``: ``SharpenConfig``.
- ``distributed``: ``World``, torchrun's environment and collectives.
- ``judge_in_loop``: ``Judging``, ``load_judge_for``.

Internal: ``loop`` (the Trainer) and ``run_checkpoint`` (the folder kept current each epoch).
"""

__all__ = [
    "distributed",
    "judge_in_loop",
    "model_options",
    "sharpen",
    "sharpen_config",
    "train",
    "train_config",
]
