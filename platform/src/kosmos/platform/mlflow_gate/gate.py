"""The MLflow server behind Kosmos's identity: an ASGI layer in front of MLflow's own app.

    client (mlflow, the UI) --token--> MlflowGate --> MLflow's FastAPI + Flask app

A caller presents a Kosmos token as ``Authorization: Bearer`` (``MLFLOW_TRACKING_TOKEN``)
or as the password of HTTP basic auth (the browser's prompt for the MLflow UI). The
platform's own processes present the service token. A user reaches only the experiments,
runs, logged models, traces, artifacts and registered models of projects they hold a role
on (``rules.py``); whatever else MLflow serves is for platform administrators. Roles are
read once per token for ``server.auth_cache_seconds``, so a revocation holds within seconds.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kosmos.platform.api.auth_first import audit_denied
from kosmos.platform.db.engine import Database
from kosmos.platform.db.models import Role
from kosmos.platform.errors import KosmosError, Unauthenticated
from kosmos.platform.identity.access import Principal, authenticate, project_roles
from kosmos.platform.identity.tokens import hash_token
from kosmos.platform.mlflow_gate.resolve import ProjectResolver
from kosmos.platform.mlflow_gate.rules import (
    OPEN_PATHS,
    PROTECTED_TAGS,
    UI_PREFIXES,
    Call,
    Refused,
    Rule,
    normalize,
    project_of_experiment_name,
    project_of_model_name,
    rule_for,
)

log = logging.getLogger("kosmos.mlflow_gate")


_KEYED_TAG_CALLS = ("/runs/set-tag", "/runs/delete-tag", "/set-experiment-tag", "/delete-experiment-tag")


class _Denied(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Access:
    """A token's principal and its role per project, remembered for ``ttl_s``."""

    def __init__(self, database: Database, ttl_s: float) -> None:
        self.database, self.ttl_s = database, ttl_s
        self._entries: dict[str, tuple[float, Principal, dict[str, Role]]] = {}
        self._lock = threading.Lock()

    def of(self, token: str) -> tuple[Principal, dict[str, Role]]:
        key = hash_token(token)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1], entry[2]
        with self.database.transaction() as session:
            principal = authenticate(session, token)
            roles = project_roles(session, principal)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, principal, roles)
        return principal, roles


class MlflowGate:
    """Authenticate every call to MLflow with Kosmos and authorize it by project."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Database,
        service_token: str,
        auth_cache_seconds: float,
        max_body_bytes: int,
        resolver: ProjectResolver | None = None,
    ) -> None:
        self.app = app
        self.database = database
        self.service_token = service_token
        self.access = _Access(database, auth_cache_seconds)
        self.max_body_bytes = max_body_bytes
        self.resolver = resolver or ProjectResolver()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = normalize(scope["path"])
        if path in OPEN_PATHS or path.startswith(UI_PREFIXES):
            await self.app(scope, receive, send)
            return
        try:
            token = _credentials(scope)
            if token is None:
                raise _Denied(401, "UNAUTHENTICATED", "send a Kosmos token (MLFLOW_TRACKING_TOKEN)")
            if hmac.compare_digest(token.encode(), self.service_token.encode()):
                await self.app(scope, receive, send)
                return
            try:
                principal, roles = await run_in_threadpool(self.access.of, token)
            except Unauthenticated as exc:
                raise _Denied(401, "UNAUTHENTICATED", exc.message) from exc
            if principal.platform_admin or (scope["method"] == "GET" and path == "/"):
                await self.app(scope, receive, send)
                return
            await self._as_user(scope, receive, send, path, principal, roles)
        except _Denied as denied:
            await _answer(send, denied)

    async def _as_user(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        principal: Principal,
        roles: dict[str, Role],
    ) -> None:
        method = scope["method"]
        found = rule_for(method, path)
        if found is None:
            raise _Denied(
                403,
                "PERMISSION_DENIED",
                f"{method} {path} is open to platform administrators only; project members use "
                "experiments, runs, artifacts and traces, and read the registry (registry writes go "
                "through Kosmos: kosmos models register / promote)",
            )
        rule, params = found
        body = await _read_body(receive, self.max_body_bytes) if rule.needs_body else None
        call = Call(
            method=method,
            path=path,
            params=params,
            query=parse_qs(scope.get("query_string", b"").decode("latin-1")),
            body=_json(body),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])},
        )
        try:
            projects = await run_in_threadpool(self._projects, rule, call)
            project = projects[0] if projects else None
            body = self._checked(call, body, principal, project)
        except Refused as exc:
            raise _Denied(403, "PERMISSION_DENIED", str(exc)) from exc
        for name in projects:
            role = roles.get(name) if name is not None else None
            if role is None:
                raise _Denied(404, "RESOURCE_DOES_NOT_EXIST", f"{path}: not found")
            if role < rule.role:
                message = (
                    f"role {rule.role.name} or higher on project {name!r} is required; you have {role.name}"
                )
                await run_in_threadpool(self._audit, principal, scope, name, message)
                raise _Denied(403, "PERMISSION_DENIED", message)
        if body is not None:
            receive = _replay(body)
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        if rule.filter is None:
            await self.app(scope, receive, send)
        else:
            await self._filtered(scope, receive, send, rule.filter, roles)

    def _projects(self, rule: Rule, call: Call) -> list[str | None]:
        return [self.resolver.project(t) for t in rule.targets(call)]

    def _checked(
        self, call: Call, body: bytes | None, principal: Principal, project: str | None
    ) -> bytes | None:
        """Refuse what would move an object out of its project; stamp a new run or logged model with
        its owner (whatever owner tags the client sent)."""
        data = call.body
        tags = [(t.get("key"), t.get("value")) for t in data.get("tags") or [] if isinstance(t, dict)]
        if call.path.endswith(_KEYED_TAG_CALLS):
            deleting = call.path.rsplit("/", 1)[-1].startswith("delete-")
            tags.append((data.get("key"), None if deleting else data.get("value")))
        creates_model = call.method == "POST" and call.path.endswith("/mlflow/logged-models")
        if creates_model or call.path.endswith(("/runs/create", "/experiments/create")):
            if data.get("artifact_location"):
                raise Refused("artifact_location is chosen by the server: it keeps artifacts per project")
            owned = {"kosmos.project": project or ""}
            if call.path.endswith("/runs/create"):
                data["user_id"] = principal.user_name
            if not call.path.endswith("/experiments/create"):  # MLflow's client sends its OS user
                owned |= {"mlflow.user": principal.user_name, "kosmos.user": principal.user_name}
            kept = [t for t in data.get("tags") or [] if isinstance(t, dict) and t.get("key") not in owned]
            data["tags"] = kept + [{"key": k, "value": v} for k, v in owned.items()]
            return json.dumps(data).encode()
        # MLflow's own client sends the owner tags again (log_model: mlflow.user): a value that says
        # what Kosmos set is no change; naming another user or project, or deleting one, is refused
        own = {
            "mlflow.user": principal.user_name,
            "kosmos.user": principal.user_name,
            "kosmos.project": project,
        }
        claimed = {k for k, v in tags if k in PROTECTED_TAGS and (v is None or own.get(k) != v)}
        if protected := sorted(claimed):
            raise Refused(f"tags {protected} say whose an object is; Kosmos sets them when it is created")
        renamed = call.path.endswith("/experiments/update") and data.get("new_name") is not None
        if renamed and project_of_experiment_name(str(data["new_name"])) != project:
            raise Refused("an experiment keeps its project: new_name must start with '<project>/'")
        return body

    def _audit(self, principal: Principal, scope: Scope, project: str, message: str) -> None:
        audit_denied(self.database, principal, scope, project, KosmosError(message))

    async def _filtered(
        self, scope: Scope, receive: Receive, send: Send, what: tuple[str, str], roles: dict[str, Role]
    ) -> None:
        """Send a search's page with the items of other projects taken out."""
        key, kind = what
        project_of = project_of_experiment_name if kind == "experiment" else project_of_model_name
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            payload = b"".join(chunks)
            assert start is not None
            if start["status"] == 200:
                data = _json(payload)
                data[key] = [i for i in data.get(key) or [] if project_of(str(i.get("name", ""))) in roles]
                payload = json.dumps(data).encode()
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(payload)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

        await self.app(scope, receive, capture)


def _credentials(scope: Scope) -> str | None:
    """A bearer token, or the password of HTTP basic auth (any user name)."""
    for name, value in scope.get("headers", []):
        if name != b"authorization":
            continue
        scheme, _, credentials = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip() or None
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(credentials.strip()).decode().partition(":")[2] or None
            except (ValueError, UnicodeDecodeError):
                return None
    return None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, seen = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise _Denied(413, "INVALID_PARAMETER_VALUE", f"request body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _json(body: bytes | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _answer(send: Send, denied: _Denied) -> None:
    payload = json.dumps({"error_code": denied.code, "message": denied.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if denied.status == 401:
        headers.append((b"www-authenticate", b'Basic realm="Kosmos MLflow", charset="UTF-8"'))
    await send({"type": "http.response.start", "status": denied.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
