"""The admin page's sessions, signed cookies, CSRF tokens and sign-in throttle.

Sessions live in memory (a restart signs everyone out); the cookie carries
only the session id, signed with HMAC-SHA256 under a per-install secret kept
in the state folder (mode 0600). Each session has its own CSRF token, put in
every form. Nothing here does IO except :func:`load_secret`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raspapi.host.files import atomic_write

log = logging.getLogger("raspapi.admin")

#: A session ends after this long without a page load...
IDLE_SECONDS = 30 * 60
#: ...and in any case this long after sign-in.
MAX_AGE_SECONDS = 12 * 3600
MAX_SESSIONS = 64


def load_secret(path: Path) -> bytes:
    """The install's signing secret; made (mode 0600) on first use. Blocking."""
    try:
        text = path.read_text(encoding="ascii").strip()
        if len(text) == 64:
            return bytes.fromhex(text)
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    secret = secrets.token_bytes(32)
    try:
        atomic_write(path, secret.hex().encode() + b"\n", mode=0o600)
    except OSError as exc:
        log.warning(
            "cannot save the admin page's secret to %s (%s); using one for this run only",
            path,
            exc.strerror or exc,
        )
    return secret


class Signer:
    """``value.signature``, where the signature is a truncated HMAC-SHA256."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, token: str | None) -> str | None:
        if not token or len(token) > 200:
            return None
        value, _, mac = token.rpartition(".")
        if not value or not hmac.compare_digest(mac.encode(), self._mac(value).encode()):
            return None
        return value


@dataclass
class Session:
    sid: str
    #: Who signed in: the key's name, its id (None: the .env admin key) and
    #: the SHA-256 of the key, so the session ends when that key stops working.
    name: str
    key_id: str | None
    key_sha256: str
    created: float
    seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flashes: list[tuple[str, str]] = field(default_factory=list)
    #: A key to show once on the next page (never logged, never stored).
    reveal: tuple[str, str] | None = None

    def flash(self, kind: str, text: str) -> None:
        self.flashes = [*self.flashes[-4:], (kind, text)]

    def check_csrf(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf.encode())


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._by_id: dict[str, Session] = {}

    def create(self, name: str, key_id: str | None, key_sha256: str) -> Session:
        now = self.clock()
        self._expire(now)
        while len(self._by_id) >= MAX_SESSIONS:
            oldest = min(self._by_id.values(), key=lambda s: s.seen)
            del self._by_id[oldest.sid]
        session = Session(secrets.token_urlsafe(32), name, key_id, key_sha256, now, now)
        self._by_id[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session with this id (its idle clock restarts), or None."""
        if sid is None:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = self.clock()
        if now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS:
            del self._by_id[sid]
            return None
        session.seen = now
        return session

    def end(self, sid: str) -> None:
        self._by_id.pop(sid, None)

    def _expire(self, now: float) -> None:
        for sid, session in list(self._by_id.items()):
            if now - session.seen > IDLE_SECONDS or now - session.created > MAX_AGE_SECONDS:
                del self._by_id[sid]


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class Throttle:
    """Sign-in failures per client address: after ``free`` failures each further
    one doubles the wait (2 s, 4 s, 8 s, ... at most ``max_delay``); while an
    address waits, its attempts are refused (429) without looking at the key."""

    def __init__(
        self,
        *,
        free: int = 5,
        max_delay: float = 900.0,
        forget_after: float = 900.0,
        max_clients: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_clients = max_clients
        self.clock = clock
        self._clients: dict[str, _Failures] = {}

    def retry_after(self, client: str) -> int:
        """Seconds this client must wait before trying again (0: go ahead)."""
        entry = self._clients.get(client)
        if entry is None:
            return 0
        now = self.clock()
        if entry.blocked_until > now:
            return max(1, math.ceil(entry.blocked_until - now))
        if now - entry.last > self.forget_after:
            del self._clients[client]
        return 0

    def failed(self, client: str) -> None:
        now = self.clock()
        entry = self._clients.get(client)
        if entry is None:
            if len(self._clients) >= self.max_clients:
                stalest = min(self._clients, key=lambda c: self._clients[c].last)
                del self._clients[stalest]
            entry = self._clients[client] = _Failures()
        entry.count += 1
        entry.last = now
        if entry.count >= self.free:
            delay = min(2.0 ** (entry.count - self.free + 1), self.max_delay)
            entry.blocked_until = now + delay

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
