"""Logging: one line per record on stderr, so journald keeps each as one entry.

Under systemd (stderr connected to the journal), each line starts with its
syslog priority (``<3>`` error, ``<4>`` warning, ``<6>`` info...), which
journald reads and strips: ``journalctl -u restapi.service -p warning`` then
shows exactly the warnings and errors. On a terminal, lines are plain.

The access log explains every request worth an admin's attention:

- a refusal (401, 403, 429) names its reason (``no key``, ``unknown key
  (X-API-Key)``, ``key 'grafana' revoked``...), never the key, at WARNING;
  repeated refusals from one caller make one line per minute with a count;
- every 5xx, and every 4xx or 5xx of a change (a non-GET ``control`` or
  ``admin`` route, as the audit log counts them), names the plugin, route,
  target, key, the reason the client was given and, when a program failed,
  its exit status and the end of its stderr, at WARNING or ERROR;
- a change that succeeded makes one INFO line, with what the audit log says.

Everything else is one INFO line per request when the access log is on
(``RASPAPI_ACCESS_LOG``); the lines above are written either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import traceback
from typing import Any

from starlette.types import Scope

from raspapi.host.runner import CommandError, CommandFailed
from raspapi.http.ratelimit import client_address
from raspapi.security.audit import _DETAIL as AUDIT_DETAIL
from raspapi.security.audit import AUDITED_SCOPES

access_log = logging.getLogger("raspapi.access")

#: syslog priorities (RFC 5424) of Python's levels: what journald reads from a ``<N>`` prefix.
SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4))
#: Scope keys: why the guard refused a request; that its failure is logged
#: already (a traceback); the program failure behind an error answer.
REFUSAL = "raspapi.refusal"
LOGGED = "raspapi.logged"
COMMAND_FAILURE = "raspapi.command_failure"
#: Characters of a program's stderr kept on a line (its end: where the error is).
STDERR_TAIL = 300
#: Bytes of an error answer kept for its ``detail`` and ``code``.
ERROR_BODY_MAX = 4096


def syslog_priority(levelno: int) -> int:
    for level, priority in SYSLOG_PRIORITIES:
        if levelno >= level:
            return priority
    return 6 if levelno >= logging.INFO else 7


def stderr_is_journal(environ: dict[str, str] | None = None, fd: int = 2) -> bool:
    """Whether ``fd`` is systemd's journal stream, as ``JOURNAL_STREAM`` (device:inode) says.

    Checking the descriptor, not just the variable, keeps prefixes off a
    terminal or pipe of a program started from a service (the variable is
    inherited, the stream is not)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not (sep and device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


class OneLineFormatter(logging.Formatter):
    """Folds tracebacks into the record's line. For journald: a syslog
    priority prefix and no timestamp (the journal has its own)."""

    def __init__(self, journald: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        if not journald:
            fmt = "%(asctime)s " + fmt
        super().__init__(fmt)
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        exc_info, record.exc_info = record.exc_info, None
        exc_text, record.exc_text = record.exc_text, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = exc_info, exc_text
        if exc_info and exc_info[1] is not None:
            frames = traceback.extract_tb(exc_info[2])[-3:]
            where = " <- ".join(
                f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(frames)
            )
            line += f" [{type(exc_info[1]).__name__} at {where}]"
        line = line.replace("\r", "\\r").replace("\n", " | ")
        if self.journald:
            line = f"<{syslog_priority(record.levelno)}>{line}"
        return line


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(journald=stderr_is_journal()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def refuse(scope: Scope, reason: str) -> None:
    """Say why this request is refused; its access line names the reason.
    Never put a key here."""
    scope[REFUSAL] = reason


def note_command_failure(scope: Scope, exc: BaseException) -> None:
    """Keep the program failure behind an error answer (``raise ApiError(...)
    from None`` in an ``except CommandError`` block still links it) for the
    request's log line: which program, its exit status, the end of its stderr."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, CommandError):
            scope[COMMAND_FAILURE] = describe_command_failure(current, str(exc))
            return
        current = current.__cause__ or current.__context__
        seen += 1


def describe_command_failure(exc: CommandError, told: str = "") -> str:
    """``wg exited with status 1; stderr: '...'``: the end of stderr, without
    the lines the answer ``told`` the client already."""
    program = os.path.basename(exc.argv[0]) if exc.argv else "?"
    if isinstance(exc, CommandFailed):
        text = exc.stderr.decode("utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        tail = " | ".join(line for line in lines if line not in told)
        if len(tail) > STDERR_TAIL:
            tail = "..." + tail[-STDERR_TAIL:]
        status = f"{program} exited with status {exc.returncode}"
        return f"{status}; stderr: {_text(tail, 400)!r}" if tail else status
    return f"{program}: {_text(exc.message, 400)}"


class _Window:
    """One open window: when it started, and the occurrences after the first."""

    __slots__ = ("count", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.count = 0


class Summary:
    """At most one line per caller, kind and reason of trouble per window.

    The first occurrence is logged in full; later ones in the same window are
    counted, and one line when the window ends says how many there were. At
    most ``max_windows`` are open at once: past that, new callers share one
    (``other callers``), so a scanner with many addresses cannot grow the
    table, nor the journal."""

    OTHERS = "other callers"

    def __init__(
        self,
        logger: logging.Logger = access_log,
        *,
        window: float = 60.0,
        max_windows: int = 1024,
        clock: Any = time.monotonic,
    ) -> None:
        self.logger = logger
        self.window = window
        self.max_windows = max_windows
        self.clock = clock
        self._open: dict[tuple[str, str, str], _Window] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, who: str, kind: str, reason: str) -> bool:
        """Whether to log this occurrence in full (False: it was counted)."""
        now = self.clock()
        key = (who, kind, reason)
        current = self._open.get(key)
        if current is not None and now - current.started >= self.window:
            self._report(key, self._open.pop(key))
            current = None
        if current is None and len(self._open) >= self.max_windows:
            self.flush(now)
            if len(self._open) >= self.max_windows:
                key = (self.OTHERS, kind, reason)
                current = self._open.get(key)
        if current is None:
            self._open[key] = _Window(now)
            self._schedule()
            return True
        current.count += 1
        return False

    def flush(self, now: float | None = None) -> None:
        """Report and close the windows that ended (every one, with no ``now``)."""
        for key, entry in list(self._open.items()):
            if now is None or now - entry.started >= self.window:
                del self._open[key]
                self._report(key, entry)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def _report(self, key: tuple[str, str, str], entry: _Window) -> None:
        if entry.count:
            who, kind, reason = key
            seconds = min(self.window, self.clock() - entry.started)
            self.logger.warning(
                "%s: %d more %s in %.0f s: %s", who, entry.count, kind, seconds, reason
            )

    def _schedule(self, delay: float | None = None) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: windows are reported by the next admit or close
        self._timer = loop.call_later(self.window if delay is None else delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = self.clock()
        self.flush(now)
        if self._open:
            first = min(entry.started for entry in self._open.values())
            self._schedule(max(0.1, first + self.window - now))


class RequestLog:
    """Writes the line of a finished request, or nothing: see the module's docstring.

    Called by the app's error middleware, which already sees every answer's
    status, so logging costs no ASGI layer of its own."""

    def __init__(self, access: bool = True, summary: Summary | None = None) -> None:
        self.access = access
        self.summary = summary if summary is not None else Summary()

    def __call__(self, scope: Scope, status: int, elapsed: float, body: list[bytes] | None) -> None:
        """``elapsed`` in milliseconds; ``body``: the first bytes of an error answer."""
        # Cheap first: most requests are a 2xx read with the access log off.
        refusal = scope.get(REFUSAL)
        route = scope.get("raspapi.route")
        method = scope["method"]
        change = (
            route is not None
            and route.scope in AUDITED_SCOPES
            and method not in ("GET", "HEAD", "OPTIONS")
        )
        failed = not scope.get(LOGGED) and (status >= 500 or (change and status >= 400))
        if refusal is None and not failed and not change and not self.access:
            return
        client = scope.get("client")
        host = str(client[0]) if client else "-"
        if refusal is not None:
            if self.summary.admit(client_address(host), "refused requests", refusal):
                line = _line(host, method, scope, status, elapsed)
                access_log.warning("%s: refused: %s", line, refusal)
        elif failed:
            kind = f"failed {method} {route.path if route is not None else 'unmatched'}"
            if self.summary.admit(client_address(host), kind, f"{status} {_code(body)}"):
                level = logging.ERROR if status >= 500 and status != 503 else logging.WARNING
                line = _line(host, method, scope, status, elapsed)
                access_log.log(level, "%s: failed: %s", line, _failure(scope, route, body))
        elif change and status < 400:
            line = _line(host, method, scope, status, elapsed)
            access_log.info("%s: %s", line, _change(scope, route))
        elif self.access:
            # Includes a 500 whose traceback is logged already: one line per failure.
            access_log.info("%s", _line(host, method, scope, status, elapsed))


def _line(host: str, method: str, scope: Scope, status: int, elapsed: float) -> str:
    return f"{host} {method} {_printable(scope.get('path', ''))} {status} {elapsed:.1f}ms"


def _error_body(body: list[bytes] | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = json.loads(b"".join(body))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _code(body: list[bytes] | None) -> str:
    return _text(_error_body(body).get("code") or "-", 60)


def _who(scope: Scope, route: Any) -> list[str]:
    parts = []
    if route is not None:
        if route.plugin:
            parts.append(f"plugin {route.plugin}")
        parts.append(f"route {scope['method']} {route.path}")
    params = scope.get("path_params") or {}
    if params:
        target = ", ".join(f"{_text(k, 40)}={_printable(v, 80)}" for k, v in params.items())
        parts.append(f"target {target}")
    caller = scope.get("raspapi.principal")
    name = getattr(caller, "name", None)
    if name is not None:
        parts.append(f"key {name!r}")
    return parts


def _failure(scope: Scope, route: Any, body: list[bytes] | None) -> str:
    error = _error_body(body)
    detail = _text(error.get("detail") or "no detail", 500)
    code = error.get("code")
    reason = f"{_text(code, 60)}: {detail}" if code else detail
    parts = [*_who(scope, route), f"answered {reason}"]
    command = scope.get(COMMAND_FAILURE)
    if command:
        parts.append(str(command))
    return "; ".join(parts)


def _change(scope: Scope, route: Any) -> str:
    parts = _who(scope, route)
    detail = scope.get(AUDIT_DETAIL)
    if detail:
        parts.append(_text(detail, 500))
    return "; ".join(parts)


def _printable(path: Any, limit: int = 300) -> str:
    """A path as one word: spaces and control characters escaped."""
    text = str(path)
    return "".join(c if c.isprintable() and c != " " else f"%{ord(c):02X}" for c in text)[:limit]


def _text(value: Any, limit: int) -> str:
    """A message as part of one line: control characters escaped, cut at ``limit``."""
    text = str(value)[: limit + 1]
    out = "".join(c if c.isprintable() else f"%{ord(c):02X}" for c in text)
    return out if len(out) <= limit else out[: limit - 3] + "..."
