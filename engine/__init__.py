"""GlioWatch domain library: pure code, no Prefect, no Streamlit, no global state."""

__version__ = "0.1.0"
