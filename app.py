"""Sound VAE Studio: the Streamlit face of the ``vae`` library (``streamlit run app.py``)."""

import streamlit as st

st.set_page_config(page_title="Sound VAE Studio", layout="wide")
pages = [st.Page("pages/home.py", title="Home", default=True)]
st.navigation(pages).run()
