"""The ``wpa_ctrl`` control interface of hostapd and wpa_supplicant.

Both daemons speak the same protocol (what ``hostapd_cli`` and ``wpa_cli``
use): the client binds a UNIX datagram socket of its own, sends one command
per datagram and reads one reply per datagram. Unsolicited event messages
(``<3>CTRL-EVENT-CONNECTED ...``) start with ``<``; the daemon sends them only
to clients that ``ATTACH``. :class:`ControlSocket` asks questions and skips
any event; :class:`EventMonitor` is an attached connection that waits, for a
bounded time, for the event a caller needs (``CTRL-EVENT-SCAN-RESULTS``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

#: The largest reply read (hostapd's and wpa_supplicant's replies stay under 4 KiB,
#: SCAN_RESULTS of a crowded place under 64 KiB).
MAX_REPLY = 65536
#: Unsolicited messages skipped while waiting for one reply.
MAX_EVENTS = 64
#: Event messages an :class:`EventMonitor` reads in one wait before giving up.
MAX_WAIT_EVENTS = 4096
#: hostapd keeps at most 2007 stations per BSS by default.
MAX_STATIONS = 2048
#: Room for a socket path in ``struct sockaddr_un``.
_SUN_PATH_MAX = 107
_EVENT = re.compile(r"<(\d)>(.*)", re.DOTALL)


class CtrlError(Exception):
    """The daemon could not be asked, or did not do what was asked."""


class CtrlUnavailable(CtrlError):
    """The daemon is not running, or its control socket cannot be used."""


class CtrlTimeout(CtrlError):
    """The daemon did not answer in time."""


class CtrlFailed(CtrlError):
    """The daemon answered ``FAIL`` (or ``UNKNOWN COMMAND``)."""


class Station(NamedTuple):
    """One associated station, as hostapd reports it (``STA-FIRST``/``STA-NEXT``)."""

    mac: str
    fields: dict[str, str]


class CtrlEvent(NamedTuple):
    """One unsolicited message: ``<level>text``; ``name`` is its first word."""

    level: int
    text: str

    @property
    def name(self) -> str:
        return self.text.split(" ", 1)[0]


def parse_event(text: str) -> CtrlEvent | None:
    """``"<3>CTRL-EVENT-CONNECTED - ..."`` as a :class:`CtrlEvent`; None for a reply."""
    found = _EVENT.match(text)
    if found is None:
        return None
    return CtrlEvent(int(found.group(1)), found.group(2).rstrip("\n"))


class _Connection:
    """What a request socket and an event monitor share: the daemon they talk
    to, our own bound end, one request-and-reply exchange, and closing."""

    #: How messages call the daemon, unless ``program`` says otherwise.
    PROGRAM = "hostapd"

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        timeout: float = 2.0,
        program: str | None = None,
    ) -> None:
        self.path = path
        self.name = name or str(path)
        self.timeout = timeout
        self.program = program or self.PROGRAM
        self._sock: socket.socket | None = None
        self._dir: str | None = None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        directory, self._dir = self._dir, None
        _discard(sock, directory)

    async def _send_and_reply(self, command: str) -> str:
        """Send ``command`` and read its reply, skipping event messages (``<3>...``)."""
        sock = self._sock
        if sock is None:
            raise CtrlUnavailable(f"cannot reach {self.program} on {self.name}")
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(sock, command.encode())
            for _ in range(MAX_EVENTS + 1):
                text = (await loop.sock_recv(sock, MAX_REPLY)).decode("utf-8", errors="replace")
                if not text.startswith("<"):
                    return text
        except OSError as exc:
            raise unavailable(exc, self.program, self.name) from None
        raise CtrlError(f"{self.program} sent only event messages on {self.name}")


class ControlSocket(_Connection):
    """One control socket, asked one request at a time.

    ``path`` is where the socket is on this machine; ``name`` is how messages
    call it (the path on the target system); ``program`` how they call the
    daemon. Our own end is bound in a private folder (under
    ``$RUNTIME_DIRECTORY`` when systemd gives one, else the temp folder) and
    removed by :meth:`close`, after any error and after a timeout, so a late
    reply can never be taken for the answer to a later request.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        timeout: float = 2.0,
        program: str | None = None,
    ) -> None:
        super().__init__(path, name=name, timeout=timeout, program=program)
        self._lock = asyncio.Lock()

    async def request(self, command: str, *, timeout: float | None = None) -> str:
        """Send ``command`` and return the daemon's reply text."""
        limit = self.timeout if timeout is None else timeout
        verb = command.split(" ", 1)[0]
        async with self._lock:
            try:
                async with asyncio.timeout(limit):
                    return await self._exchange(command)
            except TimeoutError:
                self.close()
                raise CtrlTimeout(
                    f"{self.program} did not answer {verb} within {limit:g} s on {self.name}"
                ) from None
            except BaseException:
                self.close()
                raise

    async def command(self, command: str, *, timeout: float | None = None) -> None:
        """Send a command that answers ``OK``; raise :class:`CtrlFailed` otherwise.

        The message names the command and, for ``SET``/``SET_NETWORK``, the
        setting; never a value.
        """
        reply = (await self.request(command, timeout=timeout)).strip()
        if reply != "OK":
            raise CtrlFailed(
                f"{self.program} answered {reply[:40] or 'nothing'!r} to {describe(command)}"
            )

    async def pairs(self, command: str) -> dict[str, str]:
        """A ``key=value`` reply (``STATUS``, ``GET_CONFIG``) as a dict."""
        reply = await self.request(command)
        if reply.startswith(("FAIL", "UNKNOWN COMMAND")):
            raise CtrlFailed(
                f"{self.program} answered {reply.strip()[:40]!r} to {describe(command)}"
            )
        return parse_pairs(reply)

    async def stations(self) -> list[Station]:
        """Every station, by walking ``STA-FIRST``/``STA-NEXT``."""
        out: list[Station] = []
        reply = await self.request("STA-FIRST")
        for _ in range(MAX_STATIONS):
            station = parse_station(reply)
            if station is None:
                break
            out.append(station)
            reply = await self.request(f"STA-NEXT {station.mac}")
        return out

    async def _exchange(self, command: str) -> str:
        if self._sock is None:
            await asyncio.to_thread(self._open)
        return await self._send_and_reply(command)

    def _open(self) -> None:
        # Sets both fields itself: if the waiting request was cancelled
        # meanwhile, the fresh socket is still closed by close() later.
        self._sock, self._dir = connect(self.path, self.program, self.name)


class EventMonitor(_Connection):
    """An attached control connection: ``async with EventMonitor(...) as events``.

    Entering opens a connection of its own and sends ``ATTACH``; leaving sends
    ``DETACH`` (best effort) and closes it. :meth:`wait` reads the events the
    daemon sends until one matches, for at most ``timeout`` seconds and
    :data:`MAX_WAIT_EVENTS` messages. Attach *before* the command whose
    outcome you wait for, so its event cannot be missed.
    """

    PROGRAM = "wpa_supplicant"

    def __init__(
        self,
        path: Path,
        *,
        name: str | None = None,
        timeout: float = 2.0,
        program: str | None = None,
    ) -> None:
        super().__init__(path, name=name, timeout=timeout, program=program)
        #: Every event read so far (bounded), oldest first.
        self.seen: list[CtrlEvent] = []

    async def __aenter__(self) -> EventMonitor:
        self._sock, self._dir = await asyncio.to_thread(connect, self.path, self.program, self.name)
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._send_and_reply("ATTACH")
        except TimeoutError:
            self.close()
            raise CtrlTimeout(
                f"{self.program} did not answer ATTACH within {self.timeout:g} s on {self.name}"
            ) from None
        except BaseException:
            self.close()
            raise
        if reply.strip() != "OK":
            self.close()
            raise CtrlFailed(f"{self.program} answered {reply.strip()[:40]!r} to ATTACH")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError, TimeoutError, CtrlError):
                async with asyncio.timeout(min(self.timeout, 0.5)):
                    await self._send_and_reply("DETACH")
        self.close()

    async def wait(self, match: Callable[[CtrlEvent], bool], timeout: float) -> CtrlEvent | None:
        """The first event ``match`` accepts, or None after ``timeout`` seconds."""
        sock = self._sock
        if sock is None:
            raise CtrlUnavailable(f"not attached to {self.program} on {self.name}")
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        for _ in range(MAX_WAIT_EVENTS):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                async with asyncio.timeout(left):
                    data = await loop.sock_recv(sock, MAX_REPLY)
            except TimeoutError:
                return None
            except OSError as exc:
                raise unavailable(exc, self.program, self.name) from None
            event = parse_event(data.decode("utf-8", errors="replace"))
            if event is None:
                continue  # a late reply (DETACH's, a PING's)
            if len(self.seen) < MAX_EVENTS:
                self.seen.append(event)
            if match(event):
                return event
        return None


def connect(path: Path, program: str, name: str) -> tuple[socket.socket, str]:
    """A non-blocking datagram socket bound in a private folder and connected
    to ``path``; the folder is the caller's to remove. Blocking: run it in a thread."""
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise CtrlUnavailable(f"the control socket path {path} is too long")
    directory = tempfile.mkdtemp(prefix="raspapi-ctrl-", dir=_client_folder())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(os.path.join(directory, "s"))
        sock.connect(os.fspath(path))
    except OSError as exc:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
        raise unavailable(exc, program, name) from None
    return sock, directory


def unavailable(exc: OSError, program: str, name: str) -> CtrlUnavailable:
    if isinstance(exc, FileNotFoundError):
        return CtrlUnavailable(f"{program} is not running (no control socket at {name})")
    if isinstance(exc, ConnectionRefusedError):
        return CtrlUnavailable(f"{program} is not running (nobody answers on {name})")
    if isinstance(exc, PermissionError):
        return CtrlUnavailable(f"no permission to use {program}'s control socket {name}")
    return CtrlUnavailable(f"cannot reach {program} on {name}: {exc.strerror or exc}")


def describe(command: str) -> str:
    """A command as messages may name it: the verb, and for settings the
    setting's name (``SET ssid``, ``SET_NETWORK 3 psk``), never a value."""
    words = command.split(" ", 3)
    if words[0] in ("SET", "DENY_ACL"):
        return " ".join(words[:2])
    if words[0] in ("SET_NETWORK", "GET_NETWORK"):
        return " ".join(words[:3])
    return words[0]


def _discard(sock: socket.socket | None, directory: str | None) -> None:
    if sock is not None:
        sock.close()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


def _client_folder() -> str:
    # The daemon answers to our socket's path in its own mount namespace: a
    # private /tmp (PrivateTmp=) would hide it, systemd's RuntimeDirectory= not.
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return runtime if runtime and os.path.isdir(runtime) else tempfile.gettempdir()


def parse_pairs(text: str) -> dict[str, str]:
    """``key=value`` lines; later keys win; other lines are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            out[key] = value
    return out


def parse_station(text: str) -> Station | None:
    """A ``STA-FIRST``/``STA-NEXT`` reply: the MAC on the first line, then
    ``key=value`` lines. None at the end of the list (empty reply or ``FAIL``)."""
    first, _, rest = text.partition("\n")
    mac = first.strip().lower()
    if not is_mac(mac):
        return None
    return Station(mac, parse_pairs(rest))


def is_mac(text: str) -> bool:
    """Whether ``text`` is a lower-case ``aa:bb:cc:dd:ee:ff``."""
    if len(text) != 17:
        return False
    parts = text.split(":")
    return len(parts) == 6 and all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    )


def close_all(sockets: dict[str, ControlSocket]) -> None:
    for sock in sockets.values():
        with contextlib.suppress(OSError):
            sock.close()
    sockets.clear()
