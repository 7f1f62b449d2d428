"""systemd's notify protocol: READY, WATCHDOG, STOPPING. A no-op outside systemd."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket

log = logging.getLogger("raspapi.systemd")


class Notifier:
    """Sends datagrams to ``$NOTIFY_SOCKET`` (path or abstract ``@name``)."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        owned = not pid or pid == str(os.getpid())
        self.watchdog_seconds = int(usec) / 1e6 if usec.isdigit() and owned else None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(state.encode())
        except OSError as exc:
            log.warning("cannot notify systemd: %s", exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping the watchdog from the event loop: a blocked loop stops the pings,
        and systemd restarts the service."""
        if self.watchdog_seconds is None or self.address is None:
            return
        interval = max(self.watchdog_seconds / 3, 0.05)
        loop = asyncio.get_running_loop()
        due = None
        while True:
            self.notify("WATCHDOG=1")
            now = loop.time()
            due = next_ping(due, now, interval)
            await asyncio.sleep(due - now)


def next_ping(due: float | None, now: float, interval: float) -> float:
    """When to ping next: on the loop clock's multiples of ``interval``, as the
    history and usage samplers wake. With the unit's ``WatchdogSec=30s`` (a ping
    every 10 s) and the default 10 s history interval, the ping and the sample
    share one wake-up instead of two. ``due`` (the last one) is advanced rather
    than recomputed, so a wake a little early does not ping twice; after a
    suspend (``due`` long past) the next multiple is taken."""
    if due is None or due + interval <= now:
        return math.floor(now / interval) * interval + interval
    return due + interval
