"""Sound VAE Studio: preprocess clips into spectrograms, train a convolutional VAE, make sound.

The library does all the work; the CLI (``python -m vae``) and the Streamlit app are two faces
over it. Nothing here imports Streamlit.
"""

__version__ = "0.1.0"
