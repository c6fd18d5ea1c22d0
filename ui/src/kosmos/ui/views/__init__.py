"""One module per page; each exposes ``render()`` and reads only through the SDK."""
