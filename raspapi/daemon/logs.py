"""Logging: one line per record on stderr, so journald keeps each as one entry."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("raspapi.access")


class OneLineFormatter(logging.Formatter):
    """Folds tracebacks into the record's line; no timestamps under journald."""

    def __init__(self, journald: bool) -> None:
        fmt = "%(levelname)s %(name)s: %(message)s"
        if not journald:
            fmt = "%(asctime)s " + fmt
        super().__init__(fmt)

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
        return line.replace("\r", "\\r").replace("\n", " | ")


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(journald="JOURNAL_STREAM" in os.environ))
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


class AccessLogMiddleware:
    """``<client> <METHOD> <path> <status> <ms>ms``: never headers, so never a key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            client = scope.get("client")
            elapsed = (time.perf_counter() - start) * 1000
            access_log.info(
                "%s %s %s %d %.1fms",
                client[0] if client else "-",
                scope["method"],
                _printable(scope.get("path", "")),
                status or 500,
                elapsed,
            )


def _printable(path: Any) -> str:
    text = str(path)
    return "".join(c if c.isprintable() and c != " " else f"%{ord(c):02X}" for c in text)[:300]
