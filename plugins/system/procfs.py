"""psutil reading the context root's /proc (blocking: call from a loader).

psutil finds /proc through one process-wide setting, ``psutil.PROCFS_PATH``.
The system plugin sets it to ``<root>/proc`` only while it reads, under one
lock, and sets it back: on the machine itself (root ``/``) that is ``/proc``,
unchanged; under a fixture machine it is that machine's tree, even with two
apps of different roots in one process (the tests). A ``psutil.Process``
keeps the path it was made with; ``psutil.pids()`` and
``psutil.disk_partitions()`` read it when called, so they run inside.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from raspapi.plugin import PluginContext

_LOCK = threading.Lock()


@contextmanager
def at_root(ctx: PluginContext) -> Iterator[None]:
    """psutil's /proc is the root's while the block runs (one block at a time)."""
    import psutil  # on first use: nothing reads processes or disks before a request

    path = str(ctx.path("/proc"))
    with _LOCK:
        saved = psutil.PROCFS_PATH
        psutil.PROCFS_PATH = path
        try:
            yield
        finally:
            psutil.PROCFS_PATH = saved
