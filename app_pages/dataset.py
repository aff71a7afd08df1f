"""Dataset page (being built)."""

import streamlit as st

st.title("Dataset")
st.info("This page is being built.")
