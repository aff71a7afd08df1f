"""Home: what this is, what is on disk, and the next step."""

import streamlit as st

from vae.workspace import list_checkpoints, list_datasets

st.title("Sound VAE Studio")
st.write(
    "Turn a folder of short audio clips into a variational autoencoder you can play with: "
    "preprocess clips into spectrograms, train a convolutional VAE, then reconstruct, "
    "interpolate and sample new sounds."
)

datasets, checkpoints = list_datasets(), list_checkpoints()
left, right = st.columns(2)
with left:
    st.subheader(f"Datasets ({len(datasets)})")
    for item in datasets:
        st.write(f"`{item.path}` — {item.summary}")
with right:
    st.subheader(f"Checkpoints ({len(checkpoints)})")
    for item in checkpoints:
        st.write(f"`{item.path}` — {item.summary}")

st.subheader("Next step")
if not datasets:
    st.info("No dataset yet. Make the offline demo set and preprocess it:")
    st.code(
        "python -m vae demo-data data/demo-clips\n"
        "python -m vae preprocess data/demo-clips --out data/demo --preset fsdd"
    )
elif not checkpoints:
    st.info("A dataset is ready. Train a model on it:")
    st.code(f"python -m vae train {datasets[0].path} --out checkpoints/mine --epochs 20")
else:
    st.info("A model is ready. Morph two clips or sample new ones:")
    st.code(
        f"python -m vae sample {checkpoints[0].path} --n 8 --out out/samples\n"
        f"python -m vae evaluate {checkpoints[0].path} {datasets[0].path if datasets else 'DATA'}"
    )
