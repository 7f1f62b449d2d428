"""The core's admin routes: scoped keys (``/api/v1/keys``) and the audit log."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.daemon.runtime import Runtime
from raspapi.http.errors import Invalid, Unavailable
from raspapi.http.routing import SCOPES, ApiRoute, Query, read_json
from raspapi.http.timefmt import parse_rfc3339
from raspapi.security.audit import note
from raspapi.security.keystore import KeyStore

NAME_MAX = 64
MAX_DAYS = 3650
_FIELDS = ("name", "scopes", "expires_in_days", "expires_at")
_NO_STORE = {"Cache-Control": "no-store"}

LIMIT = Query("limit", int, default=50, minimum=1, maximum=500, description="entries per page")
OFFSET = Query("offset", int, default=0, minimum=0, description="entries to skip (newest first)")
SINCE = Query("since", str, description="only entries at or after this RFC 3339 time")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _keys(request: Request) -> KeyStore:
    keys = _runtime(request).keys
    if keys is None:
        raise Unavailable("scoped keys are unavailable")
    return keys


def validate_name(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid("name", "must be a string")
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX or not name.isprintable():
        raise Invalid("name", f"must be 1 to {NAME_MAX} printable characters")
    if name.lower() == "admin":
        raise Invalid("name", "'admin' is the name of the admin key in the .env file")
    return name


def validate_scopes(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise Invalid("scopes", f"must be a non-empty list of: {', '.join(SCOPES)}")
    for scope in value:
        if scope not in SCOPES:
            raise Invalid("scopes", f"{scope!r} is not one of {', '.join(SCOPES)}")
    return [s for s in SCOPES if s in value]


def validate_expiry(days: Any, at: Any, now: float) -> float | None:
    if days is not None and at is not None:
        raise Invalid("expires_at", "give expires_in_days or expires_at, not both")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise Invalid("expires_in_days", f"must be a whole number from 1 to {MAX_DAYS}")
        return now + days * 86400.0
    if at is not None:
        try:
            moment = parse_rfc3339(at)
        except ValueError as exc:
            raise Invalid("expires_at", str(exc)) from None
        if moment <= now:
            raise Invalid("expires_at", "must be in the future")
        if moment > now + MAX_DAYS * 86400.0:
            raise Invalid("expires_at", f"must be within {MAX_DAYS} days")
        return moment
    return None


async def list_keys(request: Request) -> JSONResponse:
    """Every scoped key (never the key itself): name, scopes, state and times."""
    keys = _keys(request)
    keys.require()
    now = keys.clock()
    return JSONResponse({"keys": [r.as_dict(now) for r in keys.records()]})


async def create_key(request: Request) -> JSONResponse:
    """Create a scoped key; the answer is the only time the key is shown.

    Body: `name` (1 to 64 printable characters), `scopes` (a non-empty list of
    read, control, admin, ingest; admin implies every scope), and optionally
    `expires_in_days` or `expires_at` (RFC 3339, in the future).
    """
    keys = _keys(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise Invalid("body", "must be a JSON object")
    for field in body:
        if field not in _FIELDS:
            raise Invalid(str(field), f"unknown field; fields are {', '.join(_FIELDS)}")
    name = validate_name(body.get("name"))
    scopes = validate_scopes(body.get("scopes"))
    expires_at = validate_expiry(body.get("expires_in_days"), body.get("expires_at"), keys.clock())
    record, key = await keys.create(name, scopes, expires_at)
    note(request, f"created key {name!r} ({record.id}) with scopes {','.join(record.scopes)}")
    return JSONResponse(
        {**record.as_dict(keys.clock()), "key": key}, status_code=201, headers=_NO_STORE
    )


async def revoke_key(request: Request) -> JSONResponse:
    """Revoke a scoped key: it stops working at once. Revoking twice is harmless."""
    keys = _keys(request)
    key_id = request.path_params["id"]
    record = await keys.revoke(key_id)
    note(request, f"revoked key {record.name!r} ({record.id})")
    return JSONResponse(record.as_dict(keys.clock()))


async def audit_log(request: Request) -> JSONResponse:
    """The audit log, newest first: every control action and key change."""
    runtime = _runtime(request)
    if runtime.audit is None or (runtime.keys is not None and runtime.keys.failure is not None):
        raise Unavailable("the audit log is unavailable")
    limit = LIMIT.parse(request) or 50
    offset = OFFSET.parse(request) or 0
    since_text = SINCE.parse(request)
    since: float | None = None
    if since_text:
        try:
            since = parse_rfc3339(since_text)
        except ValueError as exc:
            raise Invalid("since", str(exc)) from None
    entries, total = await runtime.audit.entries(limit=limit, offset=offset, since=since)
    return JSONResponse({"entries": entries, "total": total, "limit": limit, "offset": offset})


_TIME = {"type": ["string", "null"], "format": "date-time"}
_SCOPES = {"type": "array", "items": {"enum": list(SCOPES)}, "minItems": 1, "uniqueItems": True}
KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "scopes", "state", "created_at"],
    "properties": {
        "id": {"type": "string", "description": "Use it to revoke the key."},
        "name": {"type": "string"},
        "scopes": _SCOPES,
        "state": {"enum": ["active", "expired", "revoked"]},
        "created_at": {"type": "string", "format": "date-time"},
        "last_used_at": {**_TIME, "description": "Written at most every 60 s."},
        "expires_at": _TIME,
        "revoked_at": _TIME,
    },
}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "scopes"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "scopes": _SCOPES,
        "expires_in_days": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
        "expires_at": {"type": "string", "format": "date-time"},
    },
    "examples": [{"name": "grafana", "scopes": ["read"], "expires_in_days": 365}],
}
CREATED_SCHEMA: dict[str, Any] = {
    **KEY_SCHEMA,
    "required": [*KEY_SCHEMA["required"], "key"],
    "properties": {
        **KEY_SCHEMA["properties"],
        "key": {
            "type": "string",
            "pattern": "^[0-9a-z]{32}$",
            "description": "The key; shown this once, stored only as a hash.",
        },
    },
}
AUDIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entries": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "at": {"type": "string", "format": "date-time"},
                    "key_id": {"type": ["string", "null"], "description": "null: the .env key"},
                    "key_name": {"type": "string"},
                    "client": {"type": ["string", "null"]},
                    "method": {"type": "string"},
                    "path": {"type": "string"},
                    "route": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": ["string", "null"]},
                },
            },
        },
        "total": {"type": "integer"},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
    },
}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute(
            "/api/v1/keys",
            list_keys,
            scope="admin",
            response={
                "type": "object",
                "properties": {"keys": {"type": "array", "items": KEY_SCHEMA}},
            },
        ),
        ApiRoute(
            "/api/v1/keys",
            create_key,
            methods=["POST"],
            scope="admin",
            body=CREATE_SCHEMA,
            response=CREATED_SCHEMA,
            status_code=201,
        ),
        ApiRoute(
            "/api/v1/keys/{id}", revoke_key, methods=["DELETE"], scope="admin", response=KEY_SCHEMA
        ),
        ApiRoute(
            "/api/v1/audit",
            audit_log,
            scope="admin",
            query=[LIMIT, OFFSET, SINCE],
            response=AUDIT_SCHEMA,
        ),
    ]
