"""systemd's notify protocol: READY, WATCHDOG, STOPPING. A no-op outside systemd."""

from __future__ import annotations

import asyncio
import logging
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
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval)
