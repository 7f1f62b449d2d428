"""Errors a handler raises to answer with a JSON error body."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """An error with an HTTP status and a machine-readable code.

    Rendered as ``{"detail": <message>, "code": <code>}`` (plus ``"field"`` when
    one input field is at fault). Never carries a traceback to the client.
    """

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.field = field
        self.headers = dict(headers or {})

    def body(self) -> dict[str, str]:
        body = {"detail": self.detail, "code": self.code}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Invalid(ApiError):
    """Bad input: 422 naming the field at fault."""

    status_code = 422
    code = "invalid"

    def __init__(self, field: str, problem: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {problem}", code=code, field=field)


class Unavailable(ApiError):
    """The hardware or program a plugin needs is absent: 503 with the reason."""

    status_code = 503
    code = "unavailable"


class StartupError(Exception):
    """A configuration problem that must stop the daemon before it serves."""
