"""Fixtures shared by the whole suite: the real services, isolated per test run.

PostgreSQL and Redis are the ones these machines run. With CI=true a missing
service fails the run and names the service; elsewhere those tests skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis as redis_lib
import uvicorn

from kosmos.platform.api.app import create_app
from kosmos.platform.api.dataplane import health
from kosmos.platform.db.engine import Database
from kosmos.platform.db.migrate import upgrade
from kosmos.platform.ray_cluster import head_command, serve_env, use_auth
from kosmos.platform.settings import Settings, get_settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("KOSMOS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KOSMOS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("KOSMOS_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("KOSMOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:10]


def service_missing(name: str, problem: object) -> None:
    """Fail in CI, skip elsewhere, and say which service is missing either way."""
    message = f"{name} is not available ({problem}); start it or see ../shared/TESTING.md"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVE_PORT = _free_port()
"""The data plane's port on the run's one Ray instance (Serve's HTTP options are fixed at its start).
Set for the whole process too: module-scoped fixtures build settings before ``isolated_home`` runs."""
os.environ["KOSMOS_RAY__SERVE_PORT"] = str(SERVE_PORT)


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Ask the OS for a free port: ``port = free_port()``."""
    return _free_port


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test reads or writes the developer's ~/.kosmos or a stray kosmos.yaml."""
    home = tmp_path / "kosmos-home"
    monkeypatch.setenv("KOSMOS_HOME", str(home))
    monkeypatch.chdir(tmp_path)  # no ./kosmos.yaml of the checkout applies
    for key in list(os.environ):
        if key.startswith("KOSMOS_") and key != "KOSMOS_HOME" and not key.startswith("KOSMOS_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KOSMOS_RAY__SERVE_PORT", str(SERVE_PORT))  # the run's Ray's data plane
    get_settings.cache_clear()
    from kosmos.platform import fluent

    fluent._current.set(None)  # no test inherits another's kosmos.login
    yield home
    get_settings.cache_clear()


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL at {PG_HOST}:{PG_PORT}", exc)
        raise


def pg_url(dbname: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated database for this run; each test copies it (CREATE DATABASE ... TEMPLATE)."""
    name = f"kosmos_tpl_{RUN_ID}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(pg_url(name))
        yield name
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of its own for one test."""
    name = f"kosmos_t_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield pg_url(name)
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _pg_databases(prefix: str) -> Iterator[Callable[[], str]]:
    """A factory of empty PostgreSQL databases, all dropped when the block ends."""
    made: list[str] = []

    def make() -> str:
        name = f"kosmos_{prefix}_{RUN_ID}_{uuid.uuid4().hex[:8]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return pg_url(name)

    try:
        yield make
    finally:
        with _pg_admin() as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_pg_database() -> Iterator[Callable[[], str]]:
    """A factory of empty PostgreSQL databases, all dropped after the test."""
    with _pg_databases("e") as make:
        yield make


@pytest.fixture(scope="session")
def session_pg_database() -> Iterator[Callable[[], str]]:
    """Like ``empty_pg_database``, for session-scoped fixtures: dropped when the run ends."""
    with _pg_databases("s") as make:
        yield make


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "kosmos.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "kosmos.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Every database test runs on both backends."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis_lib.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    yield REDIS_URL
    client.close()


@contextmanager
def serve_platform(settings: Settings, database: Database, port: int, delay_s: float = 0.0) -> Iterator[str]:
    """Serve the control plane on ``port`` (after ``delay_s``) until the block ends."""
    config = uvicorn.Config(
        create_app(settings, database), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)

    def run() -> None:
        time.sleep(delay_s)
        server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        if delay_s == 0:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_platform() -> Callable[..., Any]:
    """``with live_platform(settings, database, port) as url:`` serves a real control plane."""
    return serve_platform


def embedded_settings(home: Path) -> Settings:
    """Settings for a platform of its own under ``home``: SQLite metadata and MLflow, no demo deployments."""
    return Settings(
        home=home,
        database={"url": f"sqlite:///{home}/kosmos.db"},
        mlflow={"tracking_uri": f"sqlite:///{home}/mlflow.db"},
        deployment={"demo": False},
    )


@contextmanager
def reconciling(settings: Settings, database: Any) -> Iterator[Any]:
    """The deployment reconciler, passing every 0.5 s in a thread while the block runs."""
    from kosmos.deployment.reconciler import Reconciler

    reconciler = Reconciler(settings, database)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                reconciler.run_once()
            except Exception as exc:  # the test that waits on a status reports it
                print(f"reconciler pass failed: {exc!r}")
            stop.wait(0.5)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield reconciler
    finally:
        stop.set()
        thread.join(timeout=30)


@contextmanager
def serving_dataplane(settings: Settings) -> Iterator[str]:
    """The data plane for ``settings`` on the run's Ray, deployed as the reconciler deploys it."""
    from ray import serve

    from kosmos.deployment.dataplane import APP, dataplane_target
    from kosmos.deployment.targets import CODE_VERSION

    serve.run_many(
        [dataplane_target(settings, CODE_VERSION)],
        wait_for_ingress_deployment_creation=False,
        wait_for_applications_running=False,
    )
    url = settings.dataplane_url
    deadline = time.monotonic() + 120
    while True:
        try:  # the replica answers from the settings' own database once it is ready
            if httpx.get(f"{url}/healthz", timeout=2).json() == health(settings):  # this version's
                break
        except (httpx.HTTPError, ValueError):  # not up yet, or not the ingress answering
            pass
        assert time.monotonic() < deadline, "the data plane did not start"
        time.sleep(0.5)
    try:
        yield url
    finally:  # its settings name the test's database: once that is dropped, Serve would restart it forever
        _delete_app(APP)


def _delete_app(app: str, timeout_s: float = 60) -> None:
    from ray import serve

    serve.delete(app, _blocking=False)
    deadline = time.monotonic() + timeout_s
    while app in serve.status().applications and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.fixture(scope="session")
def dataplane(ray_cluster: str) -> Callable[[Settings], Any]:
    """``with dataplane(settings) as url:`` serves the data plane for a control plane of a test."""
    return serving_dataplane


@pytest.fixture(scope="session")
def platform_home() -> Callable[[Path], Settings]:
    """``platform_home(folder)``: Settings for a platform of its own under ``folder``."""
    return embedded_settings


@pytest.fixture(scope="session")
def reconciler_loop() -> Callable[..., Any]:
    """``with reconciler_loop(settings, database) as reconciler:`` runs the deployment reconciler."""
    return reconciling


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One local Ray head node for the whole run (4 logical CPUs, a free port, never 6379).

    The test process joins it, so Ray Train and Ray Serve run on a real cluster
    exactly as they do under `kosmos up`. Stopped (its own process group) at the end.
    """
    import ray

    port = _free_port()
    while port == 6379:
        port = _free_port()
    temp = tmp_path_factory.mktemp("ray")
    log = (temp / "head.log").open("wb")
    ingress = Settings(dataplane={"haproxy_stats_port": _free_port(), "haproxy_metrics_port": _free_port()})
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # as `kosmos up` runs it
    head = subprocess.Popen(
        head_command(port, num_cpus=4, temp_dir=str(temp)),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **serve_env(ingress), **auth},  # the data plane's ingress, as `kosmos up` runs it
        start_new_session=True,
    )
    use_auth(auth)  # this process and what it starts join with the token
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            ray.init(address=address, namespace="kosmos", log_to_driver=False, configure_logging=False)
            break
        except (ConnectionError, RuntimeError) as exc:
            if head.poll() is not None or time.monotonic() > deadline:
                os.killpg(head.pid, signal.SIGKILL)
                service_missing("Ray", f"head node did not start: {exc}; see {temp / 'head.log'}")
            time.sleep(1)
    os.environ["RAY_ADDRESS"] = address
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": SERVE_PORT})
    yield address
    for name in ("RAY_ADDRESS", *auth):
        os.environ.pop(name, None)
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    ray.shutdown()
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def feature_jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The feature-jobs service (`python -m kosmos.features.job_runner`), started the way compose
    starts it: its token and nothing of the platform's. ``{"url", "token", "scratch"}``."""
    port = _free_port()
    scratch = tmp_path_factory.mktemp("feature-jobs-tmp")
    token = secrets.token_hex(16)
    env = {"PATH": os.environ["PATH"], "HOME": str(scratch), "TMPDIR": str(scratch)}
    env["KOSMOS_FEATURES__CODE_RUNNER_TOKEN"] = token
    log = tmp_path_factory.mktemp("feature-jobs-log") / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kosmos.features.job_runner", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.3)
    yield {"url": url, "token": token, "scratch": scratch}
    process.terminate()
    process.wait(timeout=30)


class PgVectorServer:
    """A real PostgreSQL 16 with the pgvector extension for this run: the binaries pgserver ships
    in its wheel (Debian bookworm packages no pgvector and the machines' PostgreSQL 15 has none).
    It listens on a Unix socket only; ``stop``/``start`` take it down and bring it back."""

    def __init__(self, data: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(data, cleanup_mode="stop")
        socket_dir = self.server.get_postmaster_info().socket_dir
        self.url = f"postgresql+psycopg://postgres@/postgres?host={socket_dir}"

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture(scope="session")
def pgvector_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgVectorServer]:
    """One pgvector server for the run (about 1 s to start)."""
    try:
        server = PgVectorServer(tmp_path_factory.mktemp("pgvector"))
    except Exception as exc:  # reported as the missing service
        service_missing("pgvector (pgserver)", exc)
    yield server
    server.server.cleanup()
    import atexit

    atexit.unregister(server.server._cleanup)  # it would log again after pytest closed its streams


@pytest.fixture
def pgvector_url(pgvector_server: PgVectorServer) -> str:
    """A fresh database on the run's pgvector server (SQLAlchemy URL)."""
    name = f"vi_{uuid.uuid4().hex[:10]}"
    admin = pgvector_server.url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return pgvector_server.url.replace("/postgres?", f"/{name}?")


def new_project(database: Database) -> int:
    """A team and a project of their own in ``database`` (unique names); the project's id."""
    from kosmos.platform.db.models import Project, Team

    with database.transaction() as session:
        team = Team(name=f"t-{uuid.uuid4().hex[:6]}")
        session.add(team)
        session.flush()
        row = Project(name=f"p-{uuid.uuid4().hex[:6]}", team_id=team.id)
        session.add(row)
        session.flush()
        return row.id


@pytest.fixture(scope="session")
def make_project() -> Callable[[Database], int]:
    """``make_project(database)``: a new team and project there; returns the project's id."""
    return new_project


# -- the suite's phases: where its time goes ------------------------------------------------------
_PHASE_SECONDS: dict[str, float] = {}


def _phase(nodeid: str) -> str:
    """``tests/unit``, ``tests/integration/<package>`` or ``tests/e2e``: the folders the suite's time
    is reported by."""
    parts = nodeid.split("::", 1)[0].split("/")
    return "/".join(parts[:3] if len(parts) > 3 and parts[1] == "integration" else parts[:2])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _PHASE_SECONDS[_phase(report.nodeid)] = _PHASE_SECONDS.get(_phase(report.nodeid), 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Each phase's time (setup, call and teardown of its tests), beside the 15 slowest tests."""
    if not _PHASE_SECONDS:
        return
    terminalreporter.write_sep("=", "time by phase")
    for phase, seconds in sorted(_PHASE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:9.1f} s  {phase}")
    terminalreporter.write_line(f"{sum(_PHASE_SECONDS.values()):9.1f} s  in all")
