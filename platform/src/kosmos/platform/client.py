"""The SDK's HTTP core: one client for the control plane, typed errors, retries.

Package SDKs (features, training, ...) build on :class:`KosmosClient`; they never
talk HTTP themselves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from kosmos.platform.credentials import load_credentials
from kosmos.platform.errors import ERRORS_BY_CODE, ConnectionFailed, KosmosError
from kosmos.platform.settings import Settings, get_settings

API_PREFIX = "/api/v1"
_UNPREFIXED = ("/healthz", "/readyz")
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class KosmosClient:
    """A connection to one control plane as one token.

    ``url`` and ``token`` default to the settings (``KOSMOS_CLIENT__URL``,
    ``KOSMOS_CLIENT__TOKEN``, ``kosmos.yaml``), then to what `kosmos login` saved.
    Connection errors are retried with backoff; a request that reached the
    server is never retried blindly.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        settings: Settings | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = settings or get_settings()
        saved = load_credentials(settings.credentials_path)
        self.url = (url or settings.client.url or saved.get("url") or settings.api_url).rstrip("/")
        self.token = token or settings.client.token or saved.get("token")
        self.retries = settings.client.retries
        self._dataplane_url = settings.dataplane.url
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=settings.client.timeout_s, transport=transport
        )

    def __enter__(self) -> KosmosClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Call ``/api/v1{path}`` (``/healthz``, ``/readyz`` as they are).

        Returns the decoded JSON (the body's bytes with ``raw=True``), or raises the
        :class:`KosmosError` the server named. ``content`` sends bytes instead of JSON.
        ``timeout`` overrides ``client.timeout_s`` for a call known to be slow (an LLM answer).
        """
        full = path if path.startswith(_UNPREFIXED) else API_PREFIX + path
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {"Content-Type": "application/octet-stream"} if content is not None else None
        response = self._send(
            method,
            full,
            f"the Kosmos control plane at {self.url}",
            "Is it running (`make run`)? Is the URL right (`kosmos login --url`)?",
            json=json,
            params=clean,
            content=content,
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if raw and response.is_success:
            return response.content
        return _decode(response)

    def stream_json(self, path: str, body: Any, *, timeout: float | None = None) -> Iterator[Any]:
        """POST ``body`` to ``/api/v1{path}`` and yield each line of a newline-delimited JSON answer
        as it arrives; an error answer raises the :class:`KosmosError` the server named."""
        started = False
        for attempt in range(self.retries + 1):
            try:
                with self._http.stream(
                    "POST", API_PREFIX + path, json=body,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                ) as response:  # fmt: skip
                    if not response.is_success:
                        response.read()
                        _decode(response)
                    for line in response.iter_lines():
                        if line.strip():
                            started = True
                            yield json.loads(line)
                return
            except _RETRYABLE as exc:  # retried only while nothing was yielded
                if started or attempt == self.retries:
                    raise ConnectionFailed(
                        f"cannot reach the Kosmos control plane at {self.url}: {exc}"
                    ) from exc
                time.sleep(min(0.2 * 2**attempt, 2.0))

    @property
    def dataplane_url(self) -> str:
        """The data plane's base URL: ``dataplane.url``, else what the control plane says (asked once)."""
        if self._dataplane_url is None:
            self._dataplane_url = str(self.get("/dataplane")["url"]).rstrip("/")
        return self._dataplane_url

    def dataplane(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        """POST ``body`` to the data plane's ``path`` (``/{project}/...``) with this client's token.

        A request that reached the server is never retried: a prediction is cheap to ask
        again, but only the caller knows whether it may be.
        """
        response = self._send(
            "POST",
            self.dataplane_url + path,
            f"the Kosmos data plane at {self.dataplane_url}",
            "Is Ray Serve up (`kosmos doctor`)? Is `dataplane.url` right?",
            json=body,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        return _decode(response)

    def _send(self, method: str, url: str, where: str, hint: str, **kwargs: Any) -> httpx.Response:
        """One request; a connection that never reached the server is retried with backoff."""
        for attempt in range(self.retries + 1):
            try:
                return self._http.request(method, url, **kwargs)
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise ConnectionFailed(f"cannot reach {where}: {exc}. {hint}") from exc
                time.sleep(min(0.2 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)


@contextmanager
def client_or_default(client: KosmosClient | None) -> Iterator[KosmosClient]:
    """The caller's client as it is, else the session's of ``kosmos.login``, else a default one
    that is closed after the block.

    SDK functions take ``client=None`` and use this, so notebooks need not manage clients.
    """
    from kosmos.platform.fluent import session_client  # fluent builds on this module

    client = client or session_client()  # a notebook's kosmos.login holds for every SDK call
    if client is not None:
        yield client
        return
    with KosmosClient() as own:
        yield own


def _decode(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json() if response.content else None
    request_id = response.headers.get("x-request-id")
    try:
        error = response.json()["error"]
        cls = ERRORS_BY_CODE.get(error["code"], KosmosError)
        exc = cls(error["message"], details=error.get("details"), request_id=request_id)
    except (ValueError, KeyError, TypeError):
        exc = KosmosError(f"HTTP {response.status_code}: {response.text[:200]}", request_id=request_id)
    exc.status_code = response.status_code
    raise exc
