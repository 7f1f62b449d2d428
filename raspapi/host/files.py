"""Files: atomic writes (a crash never leaves a truncated file) and safe opens."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600, group: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temp file, fsync and rename.

    The new file gets ``mode``; when it replaces a file we may chown, it keeps
    that file's owner and group (RaspAP's GUI may own what we rewrite). With
    ``group`` (and root), it is ``root:group`` instead, from its first byte.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    try:
        previous: os.stat_result | None = path.stat()
    except FileNotFoundError:
        previous = None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        if group is not None and os.geteuid() == 0:
            os.fchown(fd, 0, group)
        elif previous is not None and os.geteuid() == 0:
            os.fchown(fd, previous.st_uid, previous.st_gid)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def open_regular(path: Path) -> IO[bytes] | None:
    """``path`` opened for reading; None when absent, unreadable or not a regular
    file (a folder, or a FIFO that would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return os.fdopen(fd, "rb")
    except OSError:
        pass
    os.close(fd)
    return None
