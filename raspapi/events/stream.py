"""Live events: ``GET /api/v1/events`` as Server-Sent Events, and the core's watches.

A stream starts with a ``snapshot`` event (plugin states, Wi-Fi stations,
the latest retained events), then carries every change as its own event,
and a heartbeat comment when nothing happened for a while. A client that
stops reading is dropped once its queue is full; it gets a final ``dropped``
event if it still reads at all, and the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from raspapi import __version__
from raspapi.events.bus import EventBus, Subscription, TooManySubscribers, sse_frame
from raspapi.http.errors import Unavailable
from raspapi.http.routing import ApiRoute
from raspapi.http.timefmt import rfc3339

if TYPE_CHECKING:
    from raspapi.manager import PluginManager
    from raspapi.security.keystore import KeyRecord, KeyStore
    from raspapi.settings import Settings

log = logging.getLogger("raspapi.events")

#: Stations compared per round (a bound, not a plan).
MAX_STATIONS = 4096
#: Queued events sent together in one write.
BATCH = 64
#: How long to wait for the client (seconds) to take the final ``dropped`` event.
FINAL_WRITE_TIMEOUT = 10.0
#: Asks EventSource clients to reconnect after 5 s.
RETRY = b"retry: 5000\n\n"
HEARTBEAT = b": heartbeat\n\n"

_abandoned: ContextVar[bool] = ContextVar("raspapi_stream_abandoned", default=False)


class CoreWatch:
    """Plugin states and Wi-Fi stations: compared with the previous round,
    each difference published (``plugin.status``, ``station.joined``,
    ``station.left``)."""

    def __init__(self, manager: PluginManager, bus: EventBus) -> None:
        self.manager = manager
        self.bus = bus
        self.plugins: dict[str, dict[str, Any]] | None = None
        self.stations: dict[tuple[str, str], dict[str, Any]] | None = None

    async def __call__(self) -> None:
        await self._plugins()
        await self._stations()

    async def _plugins(self) -> None:
        statuses = await self.manager.statuses()
        now = {name: {"state": s.state, "reason": s.reason} for name, s in statuses.items()}
        if self.plugins is not None:
            for name, entry in now.items():
                before = self.plugins.get(name)
                if before is None or before["state"] != entry["state"]:
                    self.bus.publish(
                        "plugin.status",
                        {
                            "plugin": name,
                            **entry,
                            "previous_state": before["state"] if before else None,
                        },
                    )
        self.plugins = now

    async def _stations(self) -> None:
        now: dict[tuple[str, str], dict[str, Any]] = {}
        for station in (await self.manager.stations())[:MAX_STATIONS]:
            mac, interface = station.get("mac"), station.get("interface")
            if isinstance(mac, str) and isinstance(interface, str):
                entry: dict[str, Any] = {"mac": mac, "interface": interface}
                if isinstance(station.get("signal_dbm"), int | float):
                    entry["signal_dbm"] = station["signal_dbm"]
                now[(interface, mac)] = entry
        if self.stations is not None:
            for key in now.keys() - self.stations.keys():
                self.bus.publish("station.joined", now[key])
            for key in self.stations.keys() - now.keys():
                gone = self.stations[key]
                self.bus.publish(
                    "station.left", {"mac": gone["mac"], "interface": gone["interface"]}
                )
        self.stations = now

    def snapshot(self) -> dict[str, Any]:
        stations = [
            {"mac": s["mac"], "interface": s["interface"]}
            for _, s in sorted((self.stations or {}).items())
        ]
        return {
            "version": __version__,
            "plugins": self.plugins or {},
            "stations": stations,
            "station_count": len(stations),
            "latest": {t: e.payload() for t, e in sorted(self.bus.latest.items())},
        }


def key_events(bus: EventBus) -> Any:
    """The keystore's change callback: ``key.created`` / ``key.revoked`` (never the key)."""

    def changed(kind: str, record: KeyRecord) -> None:
        bus.publish(
            f"key.{kind}", {"id": record.id, "name": record.name, "scopes": list(record.scopes)}
        )

    return changed


class EventStream(Response):
    """The streaming answer: written by hand rather than with StreamingResponse,
    to notice a client that went away and to bound the last write."""

    media_type = "text/event-stream"

    def __init__(
        self, bus: EventBus, sub: Subscription, snapshot: dict[str, Any], heartbeat: float
    ) -> None:
        self.bus = bus
        self.sub = sub
        self.first = RETRY + sse_frame("snapshot", snapshot)
        self.heartbeat = heartbeat
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub = self.sub
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            # The writer runs until the subscription is gone (dropped, client
            # away, shutdown), even when it waits on a client that stopped
            # reading: then it is cancelled mid-write.
            tasks = [
                asyncio.create_task(self._write_events(send)),
                asyncio.create_task(sub.gone.wait()),
                asyncio.create_task(self._until_disconnect(receive)),
            ]
            try:
                await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            writer = tasks[0]
            if writer.done() and not writer.cancelled() and writer.exception() is not None:
                raise writer.exception()  # type: ignore[misc]
            await self._last_write(send, scope)
        finally:
            self.bus.unsubscribe(sub)

    async def _until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.sub.close()

    async def _write_events(self, send: Send) -> None:
        sub = self.sub
        await _chunk(send, self.first)
        while not sub.gone.is_set():
            event = await sub.next(self.heartbeat)
            if event is None:
                if not sub.gone.is_set():
                    await _chunk(send, HEARTBEAT)
            else:
                batch = [event.frame] + [e.frame for e in sub.pending(BATCH - 1)]
                await _chunk(send, b"".join(batch))

    async def _last_write(self, send: Send, scope: Scope) -> None:
        """End the stream: a ``dropped`` event first when it fell behind. Bounded:
        a client that reads nothing at all is given up on."""
        body = b""
        if self.sub.dropped:
            body = sse_frame(
                "dropped",
                {
                    "reason": f"this stream fell {self.sub.queue.maxsize} events behind; "
                    "reconnect for a fresh snapshot",
                    "at": rfc3339(self.bus.clock()),
                },
            )
        try:
            async with asyncio.timeout(min(FINAL_WRITE_TIMEOUT, max(self.heartbeat, 0.1))):
                await send({"type": "http.response.body", "body": body, "more_body": False})
        except TimeoutError:
            # The server closes the connection once we return; its "returned
            # without completing" line is expected here, so it is filtered out.
            client = scope.get("client")
            log.warning(
                "closed an event stream whose client (%s) stopped reading",
                client[0] if client else "-",
            )
            _abandoned.set(True)
            _quiet_server_log()


class _QuietAbandoned(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_abandoned.get() and "without completing response" in str(record.msg))


_QUIET = _QuietAbandoned()


def _quiet_server_log() -> None:
    logging.getLogger("uvicorn.error").addFilter(_QUIET)  # once: addFilter skips duplicates


async def _chunk(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


class Parts(Protocol):
    """What the stream needs of the app's runtime (which holds it: no import back)."""

    settings: Settings
    manager: PluginManager
    keys: KeyStore | None
    core_watch: CoreWatch | None

    @property
    def events(self) -> EventBus: ...


def _runtime(request: Request) -> Parts:
    runtime: Parts = request.app.state.runtime
    return runtime


async def events(request: Request) -> Response:
    """Live events (Server-Sent Events): a snapshot, then every change, and heartbeats.

    `text/event-stream`. The first event, `snapshot`, holds the plugin states,
    the Wi-Fi stations and the latest retained events; then come `plugin.status`,
    `station.joined`, `station.left`, `key.created`, `key.revoked`,
    `thermal.throttling` and whatever plugins publish, each with an `id` and
    its `data` as one JSON object carrying an `at` time. A `: heartbeat` comment
    comes after `RASPAPI_EVENTS_HEARTBEAT` seconds without an event. A client
    that falls 256 events behind gets a final `dropped` event and the stream
    ends; reconnecting gives a fresh snapshot (there is no replay).
    """
    runtime = _runtime(request)
    bus = runtime.events
    try:
        sub = await bus.subscribe()
    except TooManySubscribers as exc:
        raise Unavailable(
            f"too many event streams: {exc}", code="too_many_streams", headers={"Retry-After": "30"}
        ) from None
    watch = runtime.core_watch
    snapshot = (
        watch.snapshot() if watch is not None else {"plugins": {}, "stations": [], "latest": {}}
    )
    snapshot["at"] = rfc3339(bus.clock())
    return EventStream(bus, sub, snapshot, runtime.settings.events_heartbeat)


_OBJECT = {"type": "object"}
SNAPSHOT_SCHEMA: dict[str, Any] = {
    "description": "The data of the first event (`event: snapshot`); the body is "
    "text/event-stream, not JSON.",
    "type": "object",
    "properties": {
        "version": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "plugins": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "state": {"enum": ["ok", "degraded", "unavailable", "failed", "disabled"]},
                    "reason": {"type": ["string", "null"]},
                },
            },
        },
        "stations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"mac": {"type": "string"}, "interface": {"type": "string"}},
            },
        },
        "station_count": {"type": "integer"},
        "latest": {
            "type": "object",
            "description": "The latest retained event of each type (e.g. thermal.throttling).",
            "additionalProperties": _OBJECT,
        },
    },
}


def routes() -> list[ApiRoute]:
    return [
        ApiRoute(
            "/api/v1/events",
            events,
            methods=["GET"],
            response=SNAPSHOT_SCHEMA,
            media_types=("text/event-stream",),
        )
    ]


def setup(runtime: Parts) -> None:
    """Wire the core's events: plugin states and stations (a watch), keys."""
    bus = runtime.events
    runtime.core_watch = CoreWatch(runtime.manager, bus)
    bus.watch(runtime.core_watch, "core")
    if runtime.keys is not None:
        runtime.keys.on_change = key_events(bus)
