"""The current checkpoint's downloads, wherever a person looks for them (issue 24, item 3).

The sidebar's "Download / export" expander and the Train page both draw them here: the
checkpoint folder as a zip, and an ONNX export made on request. Each is built when asked
(``ui.downloads``): a page view holds no copy of the model.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import downloads, widgets
from vae.export.exporter import export_name, export_zip
from vae.model.checkpoints import CONFIG_FILE

EXPORTED = "studio-exported"  # widget-key prefix -> ((folder, stamp), zip on disk) of an export


def checkpoint_downloads(folder: Path, prefix: str, where=st) -> None:
    """A download of ``folder`` zipped when clicked, and Export to ONNX then its download,
    drawn in ``where`` (a column, the sidebar) with widget keys starting ``prefix``."""
    with widgets.user_errors(stop=False):
        where.download_button(  # zipped when clicked: a view holds no copy of the model
            f"Download checkpoint {folder.name}.zip",
            downloads.checkpoint_zip(folder),
            file_name=f"{folder.name}.zip",
            mime="application/zip",
            key=f"{prefix}-download",
            icon=":material/download:",
        )
    stamp = (folder / CONFIG_FILE).stat().st_mtime if (folder / CONFIG_FILE).is_file() else 0.0
    key, name = (str(folder), stamp), export_name(folder, "onnx")
    if where.button("Export to ONNX", key=f"{prefix}-export", icon=":material/ios_share:"):
        with st.spinner("Exporting to ONNX and checking it with ONNX Runtime..."):
            with widgets.user_errors(stop=False, writing=folder / "onnx"):
                made = downloads.keep_export(folder, stamp, export_zip(folder, "onnx"))
                st.session_state.setdefault(EXPORTED, {})[prefix] = (key, str(made))
    offered = st.session_state.get(EXPORTED, {}).get(prefix)
    if offered and offered[0] == key and Path(offered[1]).is_file():
        where.download_button(
            f"Download {name}.zip",
            downloads.file_bytes(offered[1]),
            file_name=f"{name}.zip",
            mime="application/zip",
            key=f"{prefix}-export-download",
            icon=":material/download:",
        )
    where.caption(
        "The decoder and encoder (and the label-mixing decoder, the vocoder, when the model "
        "has them) as ONNX files with `export.json`; `examples/synthesise_onnx.py` plays "
        "them without torch."
    )
