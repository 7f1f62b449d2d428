"""Why a request was refused, in words an admin reading the journal understands.

Worked out only once a request is refused (never on the way of a good key),
and never containing the key itself: at most the name of the header it came
in and the name an admin gave a scoped key.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Scope

from raspapi.security.adminkey import KEY_NAME
from raspapi.security.auth import key_from_headers
from raspapi.security.keystore import KeyStore


def key_header(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """Which header carried a key: ``access_token``, ``X-API-Key`` or ``Bearer``."""
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name == b"access_token" and raw_value.strip():
            return "access_token"
        if name == b"x-api-key" and raw_value.strip():
            return "X-API-Key"
        if name == b"authorization":
            scheme, _, token = raw_value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return "Bearer"
    return None


def unauthenticated(scope: Scope, keys: KeyStore | None, admin_key_set: bool) -> str:
    """``no key``, ``unknown key (X-API-Key)``, ``key 'grafana' revoked`` or ``... expired``."""
    headers = scope["headers"]
    key = key_from_headers(headers)
    if not key:
        return "no key"
    if keys is not None:
        known = keys.describe(key)
        if known is not None:
            name, state = known
            return f"key {name!r} {state}"
    reason = f"unknown key ({key_header(headers) or 'header'})"
    if not admin_key_set:
        reason += f"; no {KEY_NAME} is set"
    return reason


def missing_scope(name: str, scope_name: str | None) -> str:
    return f"key {name!r} lacks scope {scope_name!r}"


def rate_limited(group: str, limit: object) -> str:
    """``rate limited: read 1200/minute``."""
    return f"rate limited: {group} {limit}" if limit is not None else f"rate limited: {group}"


AUTH_THROTTLED = "auth throttled"
