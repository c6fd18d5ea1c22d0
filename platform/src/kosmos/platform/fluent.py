"""The notebook door: ``kosmos.login`` / ``kosmos.init``, a session per context, and namespaces
(``kosmos.models``, ``kosmos.deployments``, ...) whose calls default to the session's project.

The session lives in a :class:`contextvars.ContextVar`, not a module global: each thread
and each asyncio task sees its own (a new thread starts from the saved login), so two
notebooks' worth of code in one process cannot step on each other. Explicit clients
(``KosmosClient`` and the packages' ``sdk`` modules) stay available underneath.
"""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from kosmos.platform.client import KosmosClient
from kosmos.platform.errors import InvalidInput, Unauthenticated


@dataclass
class Session:
    """Who you are, where the control plane is, and the project calls default to."""

    client: KosmosClient
    user: str
    project: str | None = None

    def __repr__(self) -> str:
        return f"<kosmos session: {self.user} at {self.client.url}, project {self.project or '(none)'}>"


_current: ContextVar[Session | None] = ContextVar("kosmos_session", default=None)


def login(url: str | None = None, token: str | None = None, *, project: str | None = None) -> Session:
    """Connect to the control plane at ``url`` with ``token`` (default: settings, then what
    `kosmos login` saved) and check the token. Returns the session, current in this context."""
    client = KosmosClient(url=url, token=token)
    if not client.token:
        raise Unauthenticated(
            "not logged in: call kosmos.login(url=..., token=...), set KOSMOS_CLIENT__TOKEN, "
            "or run `kosmos login` once"
        )
    me = client.get("/whoami")
    session = Session(client=client, user=me["user"], project=project or me.get("token_project"))
    _current.set(session)
    return session


def init(project: str, *, url: str | None = None, token: str | None = None) -> Session:
    """Work in ``project`` from now on (logging in first when needed); the project must exist."""
    session = _current.get()
    if session is None or url or token:
        session = login(url, token)
    session.client.get(f"/projects/{project}")  # NotFound names it
    session = Session(client=session.client, user=session.user, project=project)
    _current.set(session)
    return session


def current() -> Session:
    """This context's session; the first call logs in from the settings or the saved login."""
    return _current.get() or login()


def session_client() -> KosmosClient | None:
    """The client of this context's ``kosmos.login``, or None before any (no login is attempted)."""
    session = _current.get()
    return session.client if session is not None else None


def project_or_session(explicit: str | None) -> str:
    if explicit:
        return explicit
    project = current().project
    if not project:
        raise InvalidInput("no project chosen: call kosmos.init(project='...') or pass project='...'")
    return project


class Table(list):
    """A list of records that Jupyter shows as a table; ``to_pandas()`` gives a DataFrame."""

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(list(self))

    def _repr_html_(self) -> str:
        if not self:
            return "<em>(none)</em>"
        if not all(isinstance(r, dict) for r in self):
            return "<ul>" + "".join(f"<li>{html.escape(str(r))}</li>" for r in self) + "</ul>"
        columns = list(dict.fromkeys(k for r in self for k in r))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in self[:200]
        )
        more = f"<p>{len(self) - 200} more rows: .to_pandas()</p>" if len(self) > 200 else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{more}"


class Record(dict):
    """One object (a run, a model, a deployment) that Jupyter shows as a two-column table."""

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in self.items())
        return f"<table>{rows}</table>"


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        import json

        text = json.dumps(value, default=str)
        return html.escape(text if len(text) <= 120 else text[:117] + "...")
    return html.escape("" if value is None else str(value))


def present(value: Any) -> Any:
    """Lists of records become a Table, records a Record; anything else stays as it is."""
    if isinstance(value, list) and not isinstance(value, Table):
        return Table(value)
    if isinstance(value, dict) and not isinstance(value, Record):
        return Record(value)
    return value


def bind(fn: Callable[..., Any], name: str | None = None) -> Callable[..., Any]:
    """``fn(project, *args, client=None, **kw)`` as ``f(*args, project=None, **kw)`` on the session."""
    signature = inspect.signature(fn)
    params = [p for p in signature.parameters.values() if p.name not in ("project", "client")]
    kind = inspect.Parameter
    keyword_only = [p for p in params if p.kind is kind.KEYWORD_ONLY]
    var_keyword = [p for p in params if p.kind is kind.VAR_KEYWORD]
    positional = [p for p in params if p.kind not in (kind.KEYWORD_ONLY, kind.VAR_KEYWORD)]
    project_param = inspect.Parameter(
        "project", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None"
    )

    @functools.wraps(fn)
    def call(*args: Any, project: str | None = None, **kwargs: Any) -> Any:
        return present(fn(project_or_session(project), *args, client=current().client, **kwargs))

    parameters = [*positional, *keyword_only, project_param, *var_keyword]
    call.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    call.__name__ = name or fn.__name__
    call.__doc__ = (fn.__doc__ or "").strip() + "\n\nProject: the session's (kosmos.init), or ``project=``."
    return call


def _takes_project_and_client(fn: Callable[..., Any]) -> bool:
    params = list(inspect.signature(fn).parameters)
    return bool(params) and params[0] == "project" and "client" in params


class Namespace:
    """A group of calls, e.g. ``kosmos.models``; ``help(kosmos.models)`` lists them."""

    def __init__(self, name: str, doc: str, **calls: Callable[..., Any]) -> None:
        """``calls``: package SDK functions (``fn(project, ..., client=None)``), bound to the session
        here under their names; other callables (already session-aware) are taken as they are."""
        self._name, self.__doc__ = name, doc
        for call_name, call in calls.items():
            setattr(self, call_name, bind(call, call_name) if _takes_project_and_client(call) else call)
        self._calls = sorted(calls)

    def __dir__(self) -> list[str]:
        return self._calls

    def __repr__(self) -> str:
        lines = [f"kosmos.{self._name}: {self.__doc__}"]
        for call_name in self._calls:
            doc = (getattr(self, call_name).__doc__ or "").strip().splitlines()
            lines.append(
                f"  .{call_name}{inspect.signature(getattr(self, call_name))}  {doc[0] if doc else ''}"
            )
        return "\n".join(lines)
