"""The verifier as the cache uses it: a registered model, resolved by alias, asked per candidate."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kosmos.genai.verifier.features import COLUMNS, feature_frame, pair_features
from kosmos.platform.plugins import StartupRefused

log = logging.getLogger(__name__)
__all__ = ["COLUMNS", "Verifier", "VerifierMissing", "parse_reference"]


class VerifierMissing(StartupRefused):
    """The configured verifier cannot be loaded from the registry (in the production profile,
    `kosmos up` stops on it)."""


def parse_reference(reference: str) -> tuple[str, str, str]:
    """``project/model@alias`` as its three parts (the alias defaults to champion)."""
    target, _, alias = reference.partition("@")
    project, _, model = target.partition("/")
    if not project or not model or "/" in model:
        raise ValueError(f"a verifier is named project/model@alias; got {reference!r}")
    return project, model, alias or "champion"


def _linear(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """A fitted StandardScaler + binary LogisticRegression as plain arrays, else None."""
    steps = getattr(model, "steps", None)
    if not steps or len(steps) != 2:
        return None
    scaler, classifier = steps[0][1], steps[1][1]
    if type(scaler).__name__ != "StandardScaler" or type(classifier).__name__ != "LogisticRegression":
        return None
    if len(getattr(classifier, "classes_", [])) != 2:
        return None
    scale = scaler.scale_ if scaler.scale_ is not None else np.ones_like(scaler.mean_)
    return scaler.mean_, scale, classifier.coef_[0], float(classifier.intercept_[0])


class Verifier:
    """A fitted pair classifier: ``probability`` that a cached question asks what the new one does."""

    def __init__(self, model: Any, min_probability: float, source: str = "") -> None:
        self.model = model
        self.min_probability = min_probability
        self.source = source
        self._linear = _linear(model)

    @classmethod
    def load(cls, tracking_uri: str, reference: str, min_probability: float) -> Verifier:
        """The registered version that ``reference`` (``project/model@alias``) points at."""
        import mlflow.sklearn
        from mlflow import MlflowClient

        try:
            project, model, alias = parse_reference(reference)
        except ValueError as exc:
            raise VerifierMissing(str(exc)) from exc
        name = f"{project}.{model}"
        try:
            version = MlflowClient(tracking_uri).get_model_version_by_alias(name, alias)
            fitted = mlflow.sklearn.load_model(f"models:/{name}/{version.version}")
        except Exception as exc:
            raise VerifierMissing(f"cache verifier {reference!r} cannot be loaded: {exc}") from exc
        return cls(fitted, min_probability, f"{project}/{model}@{alias} (version {version.version})")

    def probability(self, cached: str, query: str, cached_vector: Any, vector: Any) -> float:
        if self._linear is not None:  # scikit-learn's input checks cost 2 ms a call; this 20 us
            mean, scale, coef, intercept = self._linear
            row = pair_features([cached], [query], np.asarray(cached_vector), np.asarray(vector))[0]
            return float(1.0 / (1.0 + np.exp(-(((row - mean) / scale) @ coef + intercept))))
        frame = feature_frame([cached], [query], np.asarray(cached_vector), np.asarray(vector))
        return float(self.model.predict_proba(frame)[0, 1])

    def accepts(self, cached: str, query: str, cached_vector: Any, vector: Any) -> tuple[bool, float]:
        """Whether the candidate may be served, and the probability behind the verdict."""
        p = self.probability(cached, query, cached_vector, vector)
        return p >= self.min_probability, p
