"""Export a checkpoint for use without this project: ONNX or TorchScript files and a manifest.

Public modules (what code outside this package may import):
- ``exporter``: ``export_checkpoint``, ``read_export``, ``export_zip``, ``ExportError``.

Internal: ``graphs`` (the decoder, encoder and vocoder as plain graphs to trace).
"""

__all__ = ["exporter"]
