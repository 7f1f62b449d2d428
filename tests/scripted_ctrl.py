"""What the scripted hostapd and wpa_supplicant peers share: a UNIX datagram
socket at ``path`` served from a thread, the commands it got, and its life cycle.

A subclass sets ``path``, ``commands`` and ``counts``, calls
:meth:`_init_peer` when it is built, and answers in :meth:`_serve`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Self


class ScriptedPeer:
    path: Path
    commands: list[str]
    counts: Counter[str]
    #: The serving thread's name, seen in a hung test's thread dump.
    thread_name = "scripted-peer"

    def _init_peer(self) -> None:
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def sent(self, verb: str) -> list[str]:
        """The commands received that start with ``verb``."""
        with self._lock:
            return [c for c in self.commands if c.split(" ", 1)[0] == verb]

    def start(self) -> Self:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        raise NotImplementedError
