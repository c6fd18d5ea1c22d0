"""Kosmos training. Versioned training: DVC datasets, MLflow runs, trainers, the model registry."""

__all__: list[str] = []
