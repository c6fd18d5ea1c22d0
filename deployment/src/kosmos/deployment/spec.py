"""What a deployment should be: the desired state the reconciler applies to Ray Serve."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class Strategy(StrEnum):
    """How a new model version takes over from the one serving now."""

    direct = "direct"
    canary = "canary"
    shadow = "shadow"
    blue_green = "blue_green"
    ab = "ab"


class Autoscaling(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(1, ge=0, le=100, description="Fewest replicas per model version.")
    max_replicas: int = Field(2, ge=1, le=100, description="Most replicas per model version.")
    target_ongoing_requests: float = Field(
        8.0, gt=0, le=1000, description="Requests in flight per replica that autoscaling aims for."
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        return self


def slo_lost(errors: int, requests: int, max_error_rate: float, min_requests: int) -> bool:
    """Whether a canary step's error SLO can no longer be met.

    A step is judged over at least ``min_requests`` requests: once its errors exceed
    ``max_error_rate`` of that many (or of the requests so far, when more), no later success
    brings the rate back within the bound at the judgement, so the step stops at once. Under a
    1% SLO judged over 20 requests, the first failure ends it.
    """
    return errors > max_error_rate * max(requests, min_requests)


class Slo(BaseModel):
    """The canary stays in while both hold; a breach rolls it back."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: float = Field(0.01, ge=0, le=1, description="Largest share of failed canary requests.")
    max_p99_ms: float = Field(250.0, gt=0, description="Largest canary p99 latency in milliseconds.")
    min_requests: int = Field(
        20, ge=1, description="Canary requests a step needs before it is judged (and can advance)."
    )


class Rollout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field(Strategy.canary, description="How a new version replaces the serving one.")
    steps: list[int] = Field(
        default_factory=lambda: [5, 25, 100],
        description="Canary traffic percentages, in order; the last must be 100.",
    )
    step_seconds: float = Field(60.0, gt=0, description="Least time a canary step lasts before it advances.")
    slo: Slo = Field(default_factory=Slo, description="Limits the canary must stay inside.")
    ab_split: int = Field(50, ge=1, le=99, description="A/B: percent of keys sent to the new version.")
    ab_key: str | None = Field(
        None, description="A/B: the request field whose stable hash picks the version (e.g. user_id)."
    )

    @model_validator(mode="after")
    def _steps(self) -> Rollout:
        if not self.steps or self.steps[-1] != 100:
            raise ValueError("canary steps must end at 100")
        if any(not 0 < s <= 100 for s in self.steps) or self.steps != sorted(set(self.steps)):
            raise ValueError(f"canary steps must rise strictly within 1..100, got {self.steps}")
        if self.strategy == Strategy.ab and not self.ab_key:
            raise ValueError("an A/B rollout needs ab_key, the request field to split on")
        return self


class Optimization(BaseModel):
    """Opt-in model optimization, measured on the model's logged holdout at replica start."""

    model_config = ConfigDict(extra="forbid")

    methods: list[Literal["int8", "onnx"]] = Field(
        default_factory=lambda: ["int8", "onnx"],
        min_length=1,
        description="Methods to try: int8 (dynamic quantization), onnx (ONNX Runtime); fastest passing wins.",
    )
    tolerance: float = Field(
        0.005, ge=0, le=1, description="Largest drop of the holdout metric a method may cost (absolute)."
    )
    on_drop: Literal["refuse", "warn"] = Field(
        "refuse",
        description="A method over the tolerance fails the deploy (refuse) or is kept with a warning.",
    )
    metric: str | None = Field(
        None, description="Holdout metric (roc_auc, pr_auc, accuracy, neg_rmse); default: the model's own."
    )
    label: str | None = Field(None, description="Label column of the holdout; default: the model's own.")
    min_speedup: float = Field(
        1.05, ge=1, description="Serve an optimized variant only when it is at least this much faster."
    )
    timing_repeats: int = Field(50, ge=5, le=1000, description="Timed calls per variant and batch size.")

    @field_validator("methods")
    @classmethod
    def _unique(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError(f"optimization methods repeat: {methods}")
        return methods

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str | None) -> str | None:
        from kosmos.deployment.optimize import metric_function

        if metric is not None:
            metric_function(metric)  # raises, naming the valid metrics
        return metric


class DeploymentSpec(BaseModel):
    """A model deployment as the user asks for it (stored; versions resolved at change time)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Registered model name within the project.")
    version: str = Field(
        "champion", description="A version number or an alias (champion, challenger) to serve."
    )
    follow_alias: bool = Field(
        True, description="When `version` is an alias and it moves, roll out the new version."
    )
    replicas: int = Field(1, ge=1, le=100, description="Replicas per model version (without autoscaling).")
    autoscaling: Autoscaling | None = Field(None, description="Autoscaling bounds; replaces `replicas`.")
    num_cpus: float = Field(0.5, gt=0, le=64, description="CPUs reserved per model replica.")
    max_replicas_per_node: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Most replicas of one version on a Ray node; 1 puts each replica on its own node, "
        "so losing a node loses one replica (needs as many nodes as replicas).",
    )
    feature_service: str | None = Field(
        None, description="Feast feature service whose online features join each request by its entity keys."
    )
    missing_entities: Literal["reject", "impute"] = Field(
        "reject",
        description="A request whose entity key has no online features: reject (404 unknown_entity, "
        "naming the key and value) or impute (the model gets missing values; the decision record "
        "names the entities).",
    )
    rollout: Rollout = Field(default_factory=Rollout, description="How later versions roll out.")
    max_batch_size: int = Field(64, ge=1, le=1024, description="Dynamic batching: most rows per model call.")
    batch_wait_ms: float = Field(2.0, ge=0, le=1000, description="Dynamic batching: longest wait to fill.")
    log_sample_rate: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of successful requests that get a decision record (`kosmos explain`); "
        "failed requests always get one.",
    )
    decision_retention_days: int = Field(
        30, ge=1, le=3650, description="Days a decision record is kept before the reconciler deletes it."
    )
    optimization: Optimization | None = Field(
        None, description="Serve an int8 or ONNX variant when it is faster and keeps the holdout metric."
    )
    llm: dict[str, Any] | None = Field(
        None,
        description="Makes it an LLM endpoint: the engine spec of the package that adds llm deployments "
        "(kosmos-genai's LLMSpec; {} for defaults).",
    )

    @field_validator("llm")
    @classmethod
    def _llm_spec(cls, llm: dict[str, Any] | None) -> dict[str, Any] | None:
        if llm is None:
            return None
        from kosmos.platform.plugins import deployment_kind

        try:
            kind = deployment_kind("llm")
        except KeyError:
            raise ValueError("LLM deployments need kosmos-genai installed") from None
        return kind.validate(llm)

    @model_validator(mode="after")
    def _llm_options(self) -> DeploymentSpec:
        if self.llm is not None and (self.feature_service or self.optimization):
            raise ValueError("feature_service and optimization apply to classic models, not LLM deployments")
        problem = self.strategy_problem(self.rollout.strategy)
        if problem:
            raise ValueError(f"rollout.strategy: {problem}")
        return self

    def strategy_problem(self, strategy: Strategy) -> str | None:
        """Why this deployment cannot roll out with ``strategy`` (its kind does not implement it)."""
        if self.llm is None:
            return None
        from kosmos.platform.plugins import deployment_kind

        supported = getattr(deployment_kind("llm"), "strategies", None)
        if supported is None or strategy.value in supported:
            return None
        return f"LLM deployments roll out with {', '.join(sorted(supported))}; not {strategy.value}"
