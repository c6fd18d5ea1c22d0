"""Kosmos features. Feature engineering on Feast: feature views, point-in-time training sets, online features."""

__all__: list[str] = []
