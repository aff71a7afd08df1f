"""Synthesise page (being built)."""

import streamlit as st

st.title("Synthesise")
st.info("This page is being built.")
