"""Domain errors shared by the service layer, the REST API and the SDK.

Each error carries an HTTP status and a stable ``code``; the control plane turns
it into the one JSON error shape, and the SDK client turns that shape back into
the same exception class.
"""

from __future__ import annotations

from typing import Any


class KosmosError(Exception):
    """Base class: a message meant for people, a code meant for programs."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, details: list[dict[str, Any]] | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.request_id = request_id

    def __str__(self) -> str:
        suffix = f" (request {self.request_id})" if self.request_id else ""
        return f"{self.message}{suffix}"

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: a notebook shows this one line instead of the client's stack."""
        return [f"{type(self).__name__}: {self}"]


class InvalidInput(KosmosError):
    """The request names a field with a value that breaks its rules."""

    status_code = 422
    code = "validation_error"

    @classmethod
    def field(cls, field: str, reason: str) -> InvalidInput:
        return cls(f"{field}: {reason}", details=[{"field": field, "reason": reason}])


class Unauthenticated(KosmosError):
    """No token, or a token that is wrong, expired or revoked."""

    status_code = 401
    code = "unauthenticated"


class Forbidden(KosmosError):
    """A valid token without the right to do this."""

    status_code = 403
    code = "forbidden"


class NotFound(KosmosError):
    status_code = 404
    code = "not_found"


class UnknownEntity(NotFound):
    """An entity key (a merchant id, a user id) the feature store holds nothing for; ``details``
    name each key and value."""

    code = "unknown_entity"


class Conflict(KosmosError):
    """The object already exists, or the change clashes with the current state."""

    status_code = 409
    code = "conflict"


class ServiceUnavailable(KosmosError):
    status_code = 503
    code = "service_unavailable"


class ConnectionFailed(KosmosError):
    """The SDK could not reach the control plane at all."""

    status_code = 0
    code = "connection_failed"


ERRORS_BY_CODE: dict[str, type[KosmosError]] = {
    cls.code: cls
    for cls in (
        KosmosError,
        InvalidInput,
        Unauthenticated,
        Forbidden,
        NotFound,
        UnknownEntity,
        Conflict,
        ServiceUnavailable,
        ConnectionFailed,
    )
}
