"""Streamlit helpers shared by the pages: workspace picker, cached loads, figures, players.

Only the app imports this package; the library ``vae/`` never does.
"""
