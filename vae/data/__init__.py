"""Where clips come from and the dataset folder made of them: sources, archives, FSDD,
preprocessing.

Public modules (what code outside this package may import):
- ``sources``: ``find_audio_files``, ``LABEL_RULES``, ``label_for``, ``make_demo_set``.
- ``archive``: ``extract_archive``, ``save_uploads``.
- ``fsdd``: ``fetch_fsdd``.
- ``reader``: ``load_clips``, one file as the clips the model sees.
- ``dataset``: ``preprocess``, ``load_dataset``, ``SpectrogramSet``, ``load_split_tensor``.
- ``batches``: ``FeatureRows``, rows of ``features.npy`` read on demand.

Internal: ``ingest`` and ``parallel`` (files to features, in threads or worker processes,
behind ``dataset.preprocess``), ``waves`` (``waveforms.npy`` stored as int16, read as
float32: ``SpectrogramSet.waveforms``).
"""

__all__ = ["archive", "batches", "dataset", "fsdd", "reader", "sources"]
