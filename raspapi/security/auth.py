"""Who is calling: API keys from headers, checked in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import NamedTuple

from starlette.requests import Request
from starlette.types import Scope

from raspapi.http.routing import SCOPES
from raspapi.security.adminkey import AdminKey


class Principal(NamedTuple):
    """An authenticated caller: the key's name and the scopes it carries."""

    name: str
    scopes: frozenset[str]
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


ADMIN = Principal("admin", frozenset(SCOPES))

#: A further source of keys (scoped keys); returns None for keys it doesn't know.
KeyLookup = Callable[[str], Principal | None]


def key_from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key from ``access_token`` (RaspAP), ``X-API-Key`` or a Bearer token."""
    found: str | None = None
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name == b"access_token" or name == b"x-api-key":
            found = raw_value.decode("latin-1").strip()
        elif name == b"authorization":
            scheme, _, token = raw_value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                found = token.strip()
        else:
            continue
        if found:
            return found
    return None


class Authenticator:
    def __init__(self, admin_key: AdminKey) -> None:
        self.admin_key = admin_key
        self.lookups: list[KeyLookup] = []

    def authenticate(self, key: str | None) -> Principal | None:
        if not key:
            return None
        admin = self.admin_key.current()
        if admin and hmac.compare_digest(key.encode(), admin.encode()):
            return ADMIN
        for lookup in self.lookups:
            principal = lookup(key)
            if principal is not None:
                return principal
        return None

    def from_scope(self, scope: Scope) -> Principal | None:
        return self.authenticate(key_from_headers(scope["headers"]))


def principal(request: Request) -> Principal | None:
    """The caller of a guarded route (None on routes open to everyone)."""
    value = request.scope.get("raspapi.principal")
    return value if isinstance(value, Principal) else None


def is_admin(request: Request) -> bool:
    """Whether the caller may see secrets (Wi-Fi passphrase, VPN credentials)."""
    caller = principal(request)
    return caller is not None and caller.is_admin
