"""Sound VAE Studio: the Streamlit face of the ``vae`` library (``streamlit run app.py``).

Every page is listed here; the sidebar with the current dataset and checkpoint is drawn once
here, so it is on every page. The pages live in ``app_pages/``, not ``pages/``: Streamlit
1.67 still runs the first script run of a server (and every AppTest run) in the old
"pages/ folder" mode when a ``pages/`` folder sits beside the main script, which would show
a page without this navigation and sidebar.
"""

from pathlib import Path

import streamlit as st

from ui.host_check import refuse_other_hosts
from ui.long_lived import freeze_imports, freeze_new_imports
from ui.session_files import start_sweeper
from ui.state import sidebar
from vae.workspace import DATA_ROOT

# First of all: a page loaded under a name that is not this server's (DNS rebinding) gets
# one line and nothing else, no navigation, no sidebar, no file read.
refuse_other_hosts()
# Once per server process: sessions' upload and demo folders left by a server that ended go
# now, and ended sessions' folders every 30 s after (ui.session_files).
start_sweeper(DATA_ROOT / "sources")
# The imports every page uses (torch, plotly) set aside from the cycle collector, so
# Streamlit's full collection after each run walks only what runs made (136-250 ms a slider
# move before; ui.long_lived); again after a run that imported more (a page's first visit).
freeze_imports()
HERE = Path(__file__).resolve().parent  # so the app runs from any working directory
# The icon is a file of ours: a material icon as favicon is fetched from a font CDN.
st.set_page_config(
    page_title="Sound VAE Studio", page_icon=str(HERE / "ui" / "favicon.png"), layout="wide"
)
PAGES = [
    st.Page(HERE / "app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page(HERE / "app_pages/dataset.py", title="Dataset", icon=":material/folder_open:"),
    st.Page(HERE / "app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page(HERE / "app_pages/explore.py", title="Explore", icon=":material/scatter_plot:"),
    st.Page(HERE / "app_pages/interpolate.py", title="Interpolate", icon=":material/linear_scale:"),
    st.Page(HERE / "app_pages/synthesise.py", title="Synthesise", icon=":material/tune:"),
    st.Page(HERE / "app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
]
page = st.navigation(PAGES)
sidebar()
page.run()
freeze_new_imports()
