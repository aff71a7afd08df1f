"""Training as a background job: what it is asked for, starting it detached, reading its files.

Public modules (what code outside this package may import):
- ``runner``: ``start``, ``stop``, ``status``, ``TrainingStatus``; the readers of a job's
  files a page needs (``settings``, ``checkpoint_dataset``) are importable from it too.
- ``options``: ``JobOptions``, ``TRAIN_OPTIONS``, ``SHARPEN_OPTIONS``.
- ``recipes``: ``RECIPES``, ``Recipe``.

Internal: ``files`` (what job.json and the log say, behind ``runner``).
"""

__all__ = ["options", "recipes", "runner"]
