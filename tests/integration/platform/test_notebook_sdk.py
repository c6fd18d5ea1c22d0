"""`import kosmos` against a live control plane: login, init, the per-context session,
namespaces with docstrings, tables, and one clear error per kind."""

from __future__ import annotations

import contextvars
import pkgutil
import re
import threading
from pathlib import Path

import pytest

import kosmos
from kosmos.platform import fluent
from kosmos.platform.bootstrap import bootstrap
from kosmos.platform.db.engine import Database
from kosmos.platform.plugins import sdk_namespaces

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def live(tmp_path, free_port, live_platform, platform_home, monkeypatch):
    settings = platform_home(tmp_path / "home")
    database = Database(settings.database_url)
    token = bootstrap(settings, database).token
    with live_platform(settings, database, free_port()) as url:
        monkeypatch.setattr(fluent, "_current", contextvars.ContextVar("kosmos_session_test", default=None))
        yield url, token
    database.dispose()


def test_login_init_and_calls_on_the_session_project(live) -> None:
    url, token = live
    with pytest.raises(kosmos.Unauthenticated, match=r"not logged in: call kosmos.login"):
        kosmos.login(url=url)  # no token anywhere (the test's home is empty)
    session = kosmos.login(url=url, token=token)
    assert session.user == "admin" and session.project is None
    with pytest.raises(kosmos.InvalidInput, match=r"no project chosen: call kosmos.init"):
        kosmos.deployments.list()
    with pytest.raises(kosmos.NotFound, match="nope"):
        kosmos.init(project="nope")
    kosmos.init(project="demo")
    deployments = kosmos.deployments.list()
    assert isinstance(deployments, kosmos.Table) and deployments == []
    assert kosmos.cache.stats()["requests"] == 0  # a Record on the session's project
    with pytest.raises(kosmos.NotFound) as missing:
        kosmos.deployments.status("ghost")
    with pytest.raises(kosmos.NotFound):
        kosmos.models.list(project="other-project")  # project= overrides the session's
    error = missing.value
    assert error._render_traceback_() == [f"NotFound: {error}"]  # one line in a notebook


def test_each_thread_has_its_own_session(live) -> None:
    url, token = live
    kosmos.init(project="demo", url=url, token=token)
    seen: dict[str, object] = {}
    plain = threading.Thread(target=lambda: seen.update(plain=fluent._current.get()))
    plain.start()
    plain.join()
    context = contextvars.copy_context()
    copied = threading.Thread(target=lambda: seen.update(copied=context.run(fluent._current.get)))
    copied.start()
    copied.join()
    assert seen["plain"] is None  # a new thread starts from the saved login, not from this one
    assert seen["copied"].project == "demo"


def test_tables_and_records_render_for_notebooks() -> None:
    table = fluent.present([{"name": "a", "auc": 0.9}, {"name": "<b>", "auc": None}])
    html = table._repr_html_()
    assert html.startswith("<table>") and "&lt;b&gt;" in html and "<th>auc</th>" in html
    assert list(table.to_pandas().columns) == ["name", "auc"]
    record = fluent.present({"status": "healthy", "traffic": {"1": 100}})
    assert "<th>status</th><td>healthy</td>" in record._repr_html_()


def test_every_namespace_call_is_documented_typed_and_in_the_sdk_docs() -> None:
    docs = (ROOT / "docs" / "sdk.md").read_text()
    expected = {
        "features",
        "datasets",
        "training",
        "models",
        "deployments",
        "llm",
        "prompts",
        "cache",
        "assistant",
    }
    assert expected <= set(sdk_namespaces())
    for name in expected:
        namespace = getattr(kosmos, name)
        calls = [
            c
            for c in getattr(namespace, "__all__", dir(namespace))
            if c not in ("TrainingRun", "run", "tracked")
        ]
        assert calls, name
        if hasattr(namespace, "__path__"):  # a package: a submodule of the same name would shadow a call
            submodules = {m.name for m in pkgutil.iter_modules(namespace.__path__)}
            assert not submodules & set(calls), f"kosmos.{name}: calls named like submodules"
        for call in calls:
            fn = getattr(namespace, call)
            doc = (fn.__doc__ or "").strip()
            assert doc and not doc.startswith("Project:"), f"kosmos.{name}.{call} has no docstring"
            signature = __import__("inspect").signature(fn)
            assert "project" in signature.parameters, f"kosmos.{name}.{call} takes no project="
            assert signature.return_annotation is not signature.empty, (
                f"kosmos.{name}.{call} has no return type"
            )
            assert re.search(rf"`kosmos\.{name}\.{call}\(", docs), (
                f"docs/sdk.md does not cover kosmos.{name}.{call}"
            )
