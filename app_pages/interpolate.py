"""Interpolate page (being built)."""

import streamlit as st

st.title("Interpolate")
st.info("This page is being built.")
