"""The Kosmos web UI: Streamlit pages over the SDK."""

__all__: list[str] = []
