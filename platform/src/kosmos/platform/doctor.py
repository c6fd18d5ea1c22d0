"""`kosmos doctor`: is every service the settings name reachable, migrated and writable?

Each check names the service, where it looked (credentials masked) and exactly what is
wrong. The production profile also refuses to run with a part still embedded.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text

from kosmos.platform.settings import Settings

TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Check:
    """One service: where it was looked for, whether it is fine, and what was found."""

    service: str
    target: str
    ok: bool
    detail: str
    warning: bool = False
    """Not fine, but not a fault either (a part `kosmos up` has not started yet)."""

    @property
    def status(self) -> str:
        return "ok" if self.ok else "WARN" if self.warning else "FAIL"


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***`` (what doctor prints, never the secret)."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
    except ValueError:
        pass
    return url


def _database(service: str, url: str, migrated: bool) -> Check:
    from kosmos.platform.db.migrate import pending_revisions

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return Check(service, url, False, "does not exist yet: `kosmos up` or `kosmos db upgrade` creates it")

    engine = create_engine(
        url, connect_args={"connect_timeout": int(TIMEOUT_S)} if url.startswith("postgresql") else {}
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE kosmos_doctor (x integer)"))
            conn.execute(text("INSERT INTO kosmos_doctor VALUES (1)"))
            conn.execute(text("DROP TABLE kosmos_doctor"))
        if migrated:
            pending = pending_revisions(engine)
            if pending:
                return Check(
                    service, masked(url), False, f"{len(pending)} migrations pending: run `kosmos db upgrade`"
                )
        return Check(service, masked(url), True, "reachable, writable" + (", migrated" if migrated else ""))
    except Exception as exc:
        return Check(service, masked(url), False, _first_line(exc))
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else 'failed'}"


def _tcp(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


def _mlflow(settings: Settings) -> Check:
    import httpx

    uri = settings.mlflow_tracking_uri
    if not uri.startswith("http"):  # a store the clients open themselves (SQLite, PostgreSQL)
        return _database("MLflow store", uri, migrated=False)
    try:
        response = httpx.get(f"{uri.rstrip('/')}/health", timeout=TIMEOUT_S)
        if response.status_code == 200:
            return Check("MLflow", masked(uri), True, "tracking server answers")
        return Check("MLflow", masked(uri), False, f"/health answered HTTP {response.status_code}")
    except httpx.HTTPError as exc:
        hint = " (is `kosmos up` running?)" if settings.mlflow.tracking_uri is None else ""
        return Check("MLflow", masked(uri), False, f"{type(exc).__name__}: no tracking server there{hint}")


def _feature_jobs(settings: Settings) -> Check:
    """The service projects' feature code runs in (the production profile requires one)."""
    import httpx

    url = settings.features.code_runner_url
    if url is None:
        return Check(
            "feature jobs",
            "",
            False,
            "the production profile runs projects' feature code in the feature-jobs service "
            "(python -m kosmos.features.job_runner): set features.code_runner_url and code_runner_token",
        )
    if settings.features.code_runner_token is None:
        return Check("feature jobs", url, False, "features.code_runner_token is not set")
    try:
        response = httpx.get(f"{url.rstrip('/')}/healthz", timeout=TIMEOUT_S)
        if response.status_code == 200:
            return Check("feature jobs", url, True, "the feature-jobs service answers")
        return Check("feature jobs", url, False, f"/healthz answered HTTP {response.status_code}")
    except httpx.HTTPError as exc:
        return Check("feature jobs", url, False, f"{type(exc).__name__}: no feature-jobs service there")


def _redis(settings: Settings) -> Check:
    import redis

    url = settings.redis.url or ""
    try:
        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        key = f"{settings.redis.prefix}doctor:{uuid.uuid4().hex}"
        client.set(key, "1", ex=10)
        client.delete(key)
        return Check("Redis", masked(url), True, "reachable, writable")
    except (redis.RedisError, ValueError) as exc:
        return Check("Redis", masked(url), False, _first_line(exc))


def _ray(settings: Settings) -> Check:
    address = settings.ray.address or ""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return Check("Ray", address, False, "ray.address must be host:port or ray://host:port")
    problem = _tcp(host, int(port))
    return Check("Ray", address, problem is None, problem or "the cluster's head answers")


def _json(response: object) -> object:
    try:
        return response.json()  # type: ignore[attr-defined]
    except ValueError:
        return None


def dataplane_check(settings: Settings) -> Check:
    """The data plane (Ray Serve's ingress) answers at the URL clients are given."""
    import httpx

    from kosmos.platform.api.dataplane import HEALTHY

    url = settings.dataplane_url
    try:
        response = httpx.get(f"{url}/healthz", timeout=TIMEOUT_S)
    except httpx.HTTPError as exc:  # before `kosmos up` (or its reconciler) started Ray Serve
        detail = f"{type(exc).__name__}: nothing answers there; the deployment reconciler starts it"
        return Check("data plane", url, False, detail, warning=True)
    answer = _json(response)
    if response.status_code == 200 and isinstance(answer, dict) and HEALTHY.items() <= answer.items():
        return Check("data plane", url, True, "ingress answers")
    return Check(
        "data plane",
        url,
        False,
        f"Ray Serve answers HTTP {response.status_code} but the ingress is not deployed: "
        "is the deployment reconciler running?",
    )


def _object_store(service: str, destination: str, endpoint_url: str | None) -> Check:
    """A folder must take a file; an s3:// bucket must take (and give back) an object."""
    if destination.startswith("s3://"):
        try:
            import boto3
        except ImportError:
            return Check(service, destination, False, "s3:// needs boto3 installed")
        bucket, _, prefix = destination.removeprefix("s3://").partition("/")
        try:
            client = boto3.client("s3", endpoint_url=endpoint_url)
            key = f"{prefix.strip('/') + '/' if prefix.strip('/') else ''}kosmos-doctor/{uuid.uuid4().hex}"
            client.put_object(Bucket=bucket, Key=key, Body=b"ok")
            client.delete_object(Bucket=bucket, Key=key)
            return Check(service, destination, True, "bucket writable")
        except Exception as exc:  # botocore's NoCredentialsError, ClientError, EndpointConnectionError
            return Check(service, destination, False, _first_line(exc))
    if "://" in destination:
        return Check(service, destination, False, "only a folder or an s3:// URI is supported")
    folder = Path(destination)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return Check(service, str(folder), True, "folder writable")
    except OSError as exc:
        return Check(service, str(folder), False, f"not writable: {exc.strerror or exc}")


def _artifacts(settings: Settings) -> Check:
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL")  # what the MLflow server itself reads
    return _object_store("artifact store", settings.mlflow_artifacts_destination, endpoint)


def _dataset_remote(settings: Settings) -> Check:
    remote = settings.datasets.remote or str(settings.home / "dvc-remote")
    return _object_store("dataset remote (DVC)", remote, settings.datasets.endpoint_url)


def _training_storage(settings: Settings) -> Check:
    if settings.training.storage is None:
        return Check(
            "training storage",
            "",
            False,
            "training.storage is not set: Ray Train's checkpoints need storage every node reaches "
            "(s3://bucket/prefix or a shared folder)",
        )
    return _object_store("training storage", settings.training.storage, settings.training.endpoint_url)


def _embedded_parts(settings: Settings) -> list[Check]:
    """The production profile may not leave a part on the embedded default."""
    missing = {
        "database.url": settings.database.url,
        "mlflow.tracking_uri": settings.mlflow.tracking_uri,
        "redis.url": settings.redis.url,
        "ray.address": settings.ray.address,
    }
    return [
        Check("profile", "production", False, f"{name} is not set: the production profile needs it")
        for name, value in missing.items()
        if not value
    ]


def _background_services(settings: Settings) -> list[Check]:
    """What the platform's background services (the reconciler) said last, once they ran."""
    from kosmos.platform import heartbeats
    from kosmos.platform.db.engine import Database

    database = Database(settings.database_url)
    try:
        found = heartbeats.states(database)
    except Exception:  # not migrated or unreachable: the database check says so
        return []
    finally:
        database.dispose()
    return [
        Check(name, "heartbeat", problem is None, str(problem) if problem else "its last pass worked",
              warning=bool(problem and problem.stale))
        for name, problem in found.items()
    ]  # fmt: skip


def run_checks(settings: Settings) -> list[Check]:
    """Every configured service, checked; the embedded default checks its local parts."""
    checks: list[Check] = []
    if settings.profile == "production":
        checks += _embedded_parts(settings)
    checks.append(metadata := _database("metadata database", settings.database_url, migrated=True))
    probes: list[Callable[[Settings], Check]] = [_mlflow, _artifacts, _dataset_remote]
    if settings.redis.url or settings.features.online_store == "redis" or settings.gateway.limiter == "redis":
        probes.append(_redis)
    if settings.ray.address:
        probes.append(_ray)
    if settings.profile == "production" or settings.features.code_runner_url:
        probes.append(_feature_jobs)
    if settings.profile == "production" or settings.training.storage:
        probes.append(_training_storage)
    checks += [probe(settings) for probe in probes]
    if settings.features.registry == "sql":
        url = settings.features.registry_url
        checks.append(
            _database("Feast SQL registry", url, migrated=False)
            if url
            else Check(
                "Feast SQL registry",
                "",
                False,
                "features.registry is sql but features.registry_url is not set",
            )
        )
    checks += _plugin_checks(settings)
    if metadata.ok:
        checks += _background_services(settings)
    return checks


def _plugin_checks(settings: Settings) -> list[Check]:
    """What each installed package's configuration needs (its ``doctor`` hook)."""
    from kosmos.platform.plugins import installed_plugins

    checks: list[Check] = []
    for installed in installed_plugins():
        if installed.plugin.doctor is None:
            continue
        try:
            checks += installed.plugin.doctor(settings)
        except Exception as exc:  # a broken check is a finding, not a crash of the doctor
            checks.append(Check(f"{installed.plugin.name} checks", "", False, f"{type(exc).__name__}: {exc}"))
    return checks
