"""Kosmos features: feature views, point-in-time training sets and online features on Feast."""

__all__: list[str] = []
