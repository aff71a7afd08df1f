"""Crash-safe files on disk: atomic writes, the folders a command may write, locks, limits,
safe loads. The bottom of the library: it imports no other package of ``vae``.

Public modules (what code outside this package may import):
- ``files``: ``write_atomically``, ``atomic_write_json``, ``atomic_write_text``, ``read_json``,
  ``swap_into_place``, ``NpyAppender``, ``DiskFullError``.
- ``limits``: the ``MAX_*`` bounds, ``LimitError``, ``check``, ``read_npy_header``.
- ``output_folder``: ``check_output_folder``, ``write_output``, the ``OutputKind``s.
- ``folder_lock``: ``FolderLock``, one writer per checkpoint folder.
- ``safe_load``: ``guarded_torch_load``, ``load_weights`` (the one weights loader).
- ``data_roots``: ``data_roots``, ``check_source_folder``.
- ``folder_names``: ``folder_name``, ``FOLDER_NAME`` (the rule for dataset and checkpoint
  folder names).
"""

__all__ = [
    "data_roots",
    "files",
    "folder_lock",
    "folder_names",
    "limits",
    "output_folder",
    "safe_load",
]
