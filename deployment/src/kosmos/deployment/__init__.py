"""Kosmos deployment. Model deployment on Ray Serve: rollouts, online inference, the model cache."""

__all__: list[str] = []
