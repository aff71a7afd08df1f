"""Home: what this is, what is loaded, and the next step."""

import streamlit as st

from ui import state
from ui.safe_text import code, md
from vae.workspace import list_checkpoints, list_datasets

datasets, checkpoints = list_datasets(), list_checkpoints()
dataset, checkpoint = state.current_dataset(), state.current_checkpoint()

st.title("Sound VAE Studio")
st.write(
    "Turn a folder of short audio clips into a variational autoencoder you can play with: "
    "preprocess clips into spectrograms, train a convolutional VAE while its loss curves "
    "draw, explore the latent space as a map, morph one clip into another and synthesise "
    "new sounds with sliders. Everything here is also a `python -m vae` command."
)

st.subheader("Next step")
if checkpoint is not None:
    st.success(f"A model is ready: {code(checkpoint)}. Listen to it:")
    cols = st.columns(3)
    cols[0].page_link(
        "app_pages/explore.py", label="Explore the latent map", icon=":material/scatter_plot:"
    )
    cols[1].page_link(
        "app_pages/interpolate.py", label="Morph clip A into B", icon=":material/linear_scale:"
    )
    cols[2].page_link(
        "app_pages/synthesise.py", label="Synthesise new sounds", icon=":material/tune:"
    )
elif dataset is not None:
    st.info(f"A dataset is ready: {code(dataset)}. Train a model on it.")
    st.page_link("app_pages/train.py", label="Train a VAE", icon=":material/model_training:")
else:
    st.info(
        "No dataset yet. Point the app at a folder of clips, upload some, download the Free "
        "Spoken Digit Dataset, or generate the offline demo set."
    )
    st.page_link("app_pages/dataset.py", label="Make a dataset", icon=":material/folder_open:")

left, right = st.columns(2)
with left:
    st.subheader(f"Datasets ({len(datasets)})")
    for item in datasets:
        mark = " ← current" if item.path == dataset else ""
        st.markdown(f"{code(item.path)} — {md(item.summary)}{mark}")
with right:
    st.subheader(f"Checkpoints ({len(checkpoints)})")
    for item in checkpoints:
        mark = " ← current" if item.path == checkpoint else ""
        st.markdown(f"{code(item.path)} — {md(item.summary)}{mark}")

with st.expander("The same, headless (CLI)"):
    data = dataset or "data/demo"
    ckpt = checkpoint or "checkpoints/mine"
    st.code(
        "python -m vae demo-data data/demo-clips\n"
        f"python -m vae preprocess data/demo-clips --out {data} --preset fsdd\n"
        f"python -m vae train {data} --out {ckpt} --epochs 20\n"
        f"python -m vae interpolate {ckpt} A.wav B.wav --steps 8 --out out/morph\n"
        f"python -m vae sample {ckpt} --n 8 --out out/samples",
        language="bash",
    )
