"""Bounds on a request's head under uvicorn's httptools protocol (what the
service runs): its size, its number of header lines and the time it takes to
arrive. httptools (llhttp) bounds none of them: one 100 MB header or 1.4
million small ones were read whole, and a client sending a byte a second held
its connection forever. h11 has ``h11_max_incomplete_event_size`` for the size
(set to the same bound in :mod:`raspapi.serving`).

Past a bound the client gets ``431 Request Header Fields Too Large`` or
``408 Request Timeout`` and the connection is closed, before the app sees
anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Bytes of a request line and headers together.
MAX_HEAD_BYTES = 32 * 1024
#: Header lines in one request.
MAX_HEADERS = 100
#: Seconds from a connection's opening (or a request's first byte) to the end
#: of the request's headers.
HEAD_TIMEOUT = 10.0


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops and raises its own error."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with :data:`MAX_HEAD_BYTES`,
    :data:`MAX_HEADERS` and :data:`HEAD_TIMEOUT`."""

    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    head_timeout = HEAD_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: True while a request's head is being received.
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_size = 0
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, str(exc.__context__))
                return
            self._refuse(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self._refuse(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Whatever part of this chunk is head: past the bound by at most one read.
        if self._in_head and self._head_bytes > self.max_head_bytes:
            self._refuse(431, f"request line and headers larger than {self.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        self._in_head = True
        self._header_count = 0
        self._head_size = 0
        if self._head_timer is None:
            self._arm()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            raise _HeadTooLarge(f"more than {self.max_headers} header lines")
        self._grow(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _grow(self, size: int) -> None:
        # The exact count of a head that arrived whole in one read.
        self._head_size += size
        if self._head_size > self.max_head_bytes:
            raise _HeadTooLarge(f"request line and headers larger than {self.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    # -- helpers -------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, f"request headers not received within {self.head_timeout:g} s")

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        reason = {
            400: "Bad Request",
            408: "Request Timeout",
            431: "Request Header Fields Too Large",
        }
        body = message.encode("ascii")
        head = [f"HTTP/1.1 {status} {reason[status]}\r\n".encode("ascii")]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n" % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
