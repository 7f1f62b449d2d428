"""hostapd's control interface: requests and replies over a UNIX datagram socket.

This is the protocol ``hostapd_cli`` speaks (``wpa_ctrl``): the client binds a
socket of its own, sends one command per datagram and reads one reply per
datagram. Unsolicited event messages start with ``<`` and are skipped (hostapd
only sends them to clients that ``ATTACH``, which we never do).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: The largest reply read (hostapd's own replies stay under 4 KiB).
MAX_REPLY = 65536
#: Unsolicited messages skipped while waiting for one reply.
MAX_EVENTS = 64
#: hostapd keeps at most 2007 stations per BSS by default.
MAX_STATIONS = 2048
#: Room for a socket path in ``struct sockaddr_un``.
_SUN_PATH_MAX = 107


class CtrlError(Exception):
    """hostapd could not be asked, or did not do what was asked."""


class CtrlUnavailable(CtrlError):
    """hostapd is not running, or its control socket cannot be used."""


class CtrlTimeout(CtrlError):
    """hostapd did not answer in time."""


class CtrlFailed(CtrlError):
    """hostapd answered ``FAIL`` (or ``UNKNOWN COMMAND``)."""


@dataclass(frozen=True, slots=True)
class Station:
    """One associated station, as hostapd reports it (``STA-FIRST``/``STA-NEXT``)."""

    mac: str
    fields: dict[str, str]


class ControlSocket:
    """One hostapd control socket, asked one request at a time.

    ``path`` is where the socket is on this machine; ``name`` is how messages
    call it (the path on the target system). Our own end is bound in a private
    folder (under ``$RUNTIME_DIRECTORY`` when systemd gives one, else the temp
    folder) and removed by :meth:`close`, after any error and after a timeout,
    so a late reply can never be taken for the answer to a later request.
    """

    def __init__(self, path: Path, *, name: str | None = None, timeout: float = 2.0) -> None:
        self.path = path
        self.name = name or str(path)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._dir: str | None = None
        self._lock = asyncio.Lock()

    async def request(self, command: str, *, timeout: float | None = None) -> str:
        """Send ``command`` and return hostapd's reply text."""
        limit = self.timeout if timeout is None else timeout
        verb = command.split(" ", 1)[0]
        async with self._lock:
            try:
                async with asyncio.timeout(limit):
                    return await self._exchange(command)
            except TimeoutError:
                self.close()
                raise CtrlTimeout(
                    f"hostapd did not answer {verb} within {limit:g} s on {self.name}"
                ) from None
            except BaseException:
                self.close()
                raise

    async def command(self, command: str, *, timeout: float | None = None) -> None:
        """Send a command that answers ``OK``; raise :class:`CtrlFailed` otherwise.

        The message names the command and, for ``SET``, the setting; never a value.
        """
        reply = (await self.request(command, timeout=timeout)).strip()
        if reply != "OK":
            words = command.split(" ", 2)
            what = " ".join(words[:2]) if words[0] in ("SET", "DENY_ACL") else words[0]
            raise CtrlFailed(f"hostapd answered {reply[:40] or 'nothing'!r} to {what}")

    async def pairs(self, command: str) -> dict[str, str]:
        """A ``key=value`` reply (``STATUS``, ``GET_CONFIG``) as a dict."""
        reply = await self.request(command)
        if reply.startswith(("FAIL", "UNKNOWN COMMAND")):
            raise CtrlFailed(f"hostapd answered {reply.strip()[:40]!r} to {command}")
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

    def close(self) -> None:
        sock, self._sock = self._sock, None
        directory, self._dir = self._dir, None
        if sock is not None:
            sock.close()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    async def _exchange(self, command: str) -> str:
        loop = asyncio.get_running_loop()
        if self._sock is None:
            await asyncio.to_thread(self._open)
        sock = self._sock
        if sock is None:
            raise CtrlUnavailable(f"cannot reach hostapd on {self.name}")
        try:
            await loop.sock_sendall(sock, command.encode())
            for _ in range(MAX_EVENTS + 1):
                data = await loop.sock_recv(sock, MAX_REPLY)
                text = data.decode("utf-8", errors="replace")
                if not text.startswith("<"):
                    return text
        except OSError as exc:
            raise self._unavailable(exc) from None
        raise CtrlError(f"hostapd sent only event messages on {self.name}")

    def _open(self) -> None:
        # Sets both fields itself: if the waiting request was cancelled
        # meanwhile, the fresh socket is still closed by close() later.
        if len(os.fsencode(self.path)) > _SUN_PATH_MAX:
            raise CtrlUnavailable(f"the control socket path {self.path} is too long")
        directory = tempfile.mkdtemp(prefix="raspapi-ctrl-", dir=_client_folder())
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(os.path.join(directory, "s"))
            sock.connect(os.fspath(self.path))
        except OSError as exc:
            sock.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise self._unavailable(exc) from None
        self._sock, self._dir = sock, directory

    def _unavailable(self, exc: OSError) -> CtrlUnavailable:
        if isinstance(exc, FileNotFoundError):
            return CtrlUnavailable(f"hostapd is not running (no control socket at {self.name})")
        if isinstance(exc, ConnectionRefusedError):
            return CtrlUnavailable(f"hostapd is not running (nobody answers on {self.name})")
        if isinstance(exc, PermissionError):
            return CtrlUnavailable(f"no permission to use hostapd's control socket {self.name}")
        return CtrlUnavailable(f"cannot reach hostapd on {self.name}: {exc.strerror or exc}")


def _client_folder() -> str:
    # hostapd answers to our socket's path in its own mount namespace: a
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
