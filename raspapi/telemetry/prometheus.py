"""Prometheus exposition: ``GET /metrics`` (read scope) and, when
``RASPAPI_METRICS_ADDRESS`` is set, a second listener for a scraper that
serves only the metrics, without a key.

The families come from every plugin's ``raspapi_metrics`` hook (gathered
concurrently, each timed, one that raises or hangs left out), plus the
daemon's own: version, plugin states, per-plugin collection time and success,
requests per route template (count, errors, latency histogram, from
``runtime.requests``), and the process (CPU, memory, file descriptors). The text is
rendered in a thread (``exposition``: the client library's bytes, faster, each
family's text kept while a plugin serves the same family object), so a scrape
never blocks the event loop. One collection runs at a time: a scrape arriving
during one shares it. A scraper with a steady cadence gets its collection run
just before it comes back (``ahead``), so it finds every family refreshed and
rendered. prometheus_client is imported on the first scrape: a daemon nobody
scrapes never loads it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from raspapi import __version__
from raspapi.http.routing import ApiRoute
from raspapi.state.cache import Cache
from raspapi.telemetry import exposition
from raspapi.telemetry.exposition import Families, RenderCache

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from raspapi.daemon.runtime import Runtime
    from raspapi.telemetry.ahead import Key, ScrapeAhead

log = logging.getLogger("raspapi.metrics")

#: How long the separate listener waits for one collection.
LISTENER_TIMEOUT = 10.0
STATES = ("ok", "degraded", "unavailable", "failed", "disabled")
T = TypeVar("T")


class Exporter:
    """One per app: gathers the families, renders them, runs the optional listener."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._process: Any = None
        self._platform: list[Metric] | None = None
        self._rendered: dict[str, RenderCache] = {}
        self._executor: ThreadPoolExecutor | None = None
        # The plugins' states for raspapi_plugin_state, refreshed behind the scrape
        # that finds them expired (the manager's own period: its checks are cached
        # as long), as the plugins serve their families.
        self._statuses = Cache(ttl=max(runtime.settings.cache_ttl, 2.0))
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._collection: asyncio.Future[list[Metric]] | None = None
        #: The text rendered ahead for a scraper's expected scrape: (when, body, type).
        self._ready: dict[Key, tuple[float, bytes, str]] = {}
        self._listener_failing = False

    @functools.cached_property
    def ahead(self) -> ScrapeAhead:
        """What learns each scraper's cadence, made (and imported) at the first scrape."""
        from raspapi.telemetry.ahead import ScrapeAhead

        return ScrapeAhead(self._render_ahead, ttl=self.runtime.settings.cache_ttl)

    async def families(self) -> list[Metric]:
        """Every family; a collection already running is shared, not run twice."""
        collection = self._collection
        if collection is None:
            collection = self._collection = asyncio.ensure_future(self._collect())
            collection.add_done_callback(self._collected)
        return await asyncio.shield(collection)

    def _collected(self, collection: asyncio.Future[list[Metric]]) -> None:
        if self._collection is collection:
            self._collection = None
        if not collection.cancelled():
            collection.exception()  # every scrape may have gone: no warning

    async def _collect(self) -> list[Metric]:
        started = time.perf_counter()
        manager = self.runtime.manager
        statuses = self._statuses.get("statuses", manager.statuses, stale=2 * self._statuses.ttl)
        plugin_families, states, process = await asyncio.gather(
            manager.metrics(), statuses, self._in_thread(self._process_families)
        )
        self.ahead.collected(time.perf_counter() - started)
        return [*self._core(states), *plugin_families, *process]

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the exporter's own thread (started on the first
        scrape): a cold scrape's rendering does not queue behind the plugin refreshes
        it starts, which run in the loop's default executor."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="raspapi-metrics")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function, *args)

    def _core(self, statuses: dict[str, Any]) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        runtime = self.runtime
        info = GaugeMetricFamily(
            "raspapi_build_info", "raspapi's version (always 1)", labels=["version", "python"]
        )
        info.add_metric([__version__, sys.version.split()[0]], 1)
        yield info
        yield GaugeMetricFamily(
            "raspapi_start_time_seconds",
            "When the daemon started, seconds since the Unix epoch",
            value=runtime.started_at,
        )
        state = GaugeMetricFamily(
            "raspapi_plugin_state",
            "1 for the state each plugin is in (ok, unavailable, failed, disabled), else 0",
            labels=["plugin", "state"],
        )
        for name, status in sorted(statuses.items()):
            for candidate in STATES:
                state.add_metric([name, candidate], 1 if status.state == candidate else 0)
        yield state
        seconds = GaugeMetricFamily(
            "raspapi_plugin_collect_seconds",
            "How long each plugin's last samples or metrics collection took",
            labels=["plugin", "hook"],
        )
        success = GaugeMetricFamily(
            "raspapi_plugin_collect_success",
            "Whether each plugin's last samples or metrics collection worked (1) or not (0)",
            labels=["plugin", "hook"],
        )
        for (hook, plugin), done in sorted(runtime.manager.collections.items()):
            seconds.add_metric([plugin, hook], done.seconds)
            success.add_metric([plugin, hook], 1 if done.ok else 0)
        yield seconds
        yield success
        yield from _request_families(runtime)

    def _process_families(self) -> list[Metric]:
        """The process's (CPU, memory, descriptors: /proc reads, so in a thread) and
        the Python platform's (the same objects every time: rendered once)."""
        if self._process is None or self._platform is None:
            from prometheus_client import PlatformCollector, ProcessCollector

            self._process = ProcessCollector(registry=None)
            self._platform = list(PlatformCollector(registry=None).collect())
        return [*self._process.collect(), *self._platform]

    async def render(self, accept: str = "", source: str = "http") -> tuple[bytes, str]:
        """The exposition text (OpenMetrics when ``accept`` asks for it) and its type,
        for a scrape of ``source`` ("http": /metrics, "listener": the separate one)."""
        from prometheus_client.exposition import choose_encoder

        _, content_type = choose_encoder(accept)
        key = (source, content_type)
        self.ahead.scraped(key, accept)
        ready = self._take_ready(key)
        if ready is not None:
            return ready
        return await self._render(await self.families(), accept)

    def _take_ready(self, key: Key) -> tuple[bytes, str] | None:
        """The text rendered ahead for this scrape, if made within one cache period
        (its values then at most a cache period and a lead old); used once."""
        now = self.ahead.clock()
        for old in [k for k, (made, _, _) in self._ready.items() if now - made > self.ahead.ttl]:
            del self._ready[old]
        ready = self._ready.pop(key, None)
        return None if ready is None else (ready[1], ready[2])

    async def _render(self, families: list[Metric], accept: str) -> tuple[bytes, str]:
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept)
        # The formats a scraper asks for (OpenMetrics 1.0, what Prometheus asks first,
        # and the classic text) have a fast renderer writing the library's bytes; one
        # rendering cache per content type, as the texts differ.
        renderer = exposition.renderer_for(content_type)
        if renderer is None:  # another version or name escaping: the library's encoder
            body = await self._in_thread(encoder, Families(families))
        else:
            if content_type not in self._rendered:
                # At most the few content types renderer_for accepts.
                self._rendered[content_type] = {}
            cache = self._rendered[content_type]
            body = await self._in_thread(renderer, families, cache, encoder)
        return body, content_type

    async def _render_ahead(self, scrapers: list[tuple[Key, str]]) -> None:
        """The collection run ahead of the scrapers' next scrape (``self.ahead``): the
        plugins refresh their caches, and each format's text is rendered into its
        render cache; the whole text is kept for the scrape expected (``_take_ready``),
        so it waits for nothing, not even a plugin that builds its families per call."""
        families = await self.families()
        gathered = self.ahead.clock()
        done: dict[str, tuple[bytes, str]] = {}
        for key, accept in scrapers:
            _, content_type = key
            if content_type not in done:
                done[content_type] = await self._render(families, accept)
            self._ready[key] = (gathered, *done[content_type])

    async def endpoint(self, request: Request) -> Response:
        """Prometheus metrics: the node, every plugin's, and the daemon's own.

        The Prometheus text format (OpenMetrics when the scraper asks for it).
        Node figures use node_exporter's names, labels and help texts
        (`node_load1`, `node_cpu_seconds_total`, `node_memory_MemAvailable_bytes`...),
        so its dashboards work unchanged.
        """
        body, content_type = await self.render(request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    # -- the separate listener -------------------------------------------------

    def start_listener(self) -> None:
        """Serve the metrics without a key on ``RASPAPI_METRICS_ADDRESS``, if set:
        the same texts as /metrics (the same renderer, caches and scrape-ahead), on
        every path but /favicon.ico, as prometheus_client's own server does."""
        address = self.runtime.settings.metrics_address
        if address is None:
            return
        host, port = address
        try:
            self._server = _listener(host, port, self._listener_app(asyncio.get_running_loop()))
        except OSError as exc:
            log.error(
                "cannot serve metrics on %s:%d (RASPAPI_METRICS_ADDRESS): %s",
                host,
                port,
                exc.strerror or exc,
            )
            return
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="raspapi-metrics-listener", daemon=True
        )
        self._thread.start()
        log.info(
            "metrics for scrapers, without a key: http://%s:%d/metrics", host, self.listener_port
        )

    def _listener_app(self, loop: asyncio.AbstractEventLoop) -> WsgiApp:
        """The listener's WSGI app (run in its threads): renders on ``loop``."""

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            method = environ["REQUEST_METHOD"]
            if method == "OPTIONS":
                start_response("200 OK", [("Allow", "OPTIONS,GET")])
                return [b""]
            if method != "GET":
                start_response("405 Method Not Allowed", [("Allow", "OPTIONS,GET")])
                return [f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()]
            if environ.get("PATH_INFO") == "/favicon.ico":
                start_response("200 OK", [])
                return [b""]
            accept = environ.get("HTTP_ACCEPT") or ""
            future = asyncio.run_coroutine_threadsafe(self.render(accept, "listener"), loop)
            try:
                body, content_type = future.result(LISTENER_TIMEOUT)
            except Exception as exc:  # a timeout, the loop stopping, a failure
                future.cancel()
                if not self._listener_failing:
                    log.warning("metrics listener: the scrape failed: %r", exc)
                self._listener_failing = True
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                return [b"collecting the metrics failed\n"]
            self._listener_failing = False
            headers = [("Content-Type", content_type)]
            if _gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING") or ""):
                import gzip  # only for a gzip'ed scrape (issue 16: memory)

                body = gzip.compress(body)
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", headers)
            return [body]

        return app

    @property
    def listener_port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    async def stop_listener(self) -> None:
        """Stops the listener, the scrape-ahead timer, a collection, the rendering
        thread and a status refresh (at shutdown)."""
        if "ahead" in self.__dict__:  # made by a scrape
            await self.ahead.close()
        self._ready.clear()
        collection, self._collection = self._collection, None
        if collection is not None and not collection.done():
            collection.cancel()
            await asyncio.gather(collection, return_exceptions=True)
        await self._statuses.close()
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _gzip_accepted(header: str) -> bool:
    return any(part.split(";")[0].strip().lower() == "gzip" for part in header.split(","))


def _listener(host: str, port: int, app: WsgiApp) -> Any:
    """A threaded WSGI server on ``host:port`` (IPv4 or IPv6), not logging requests."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = family

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No line per scrape."""

    return make_server(str(sockaddr[0]), port, app, Server, handler_class=Quiet)


def _request_families(runtime: Runtime) -> Iterator[Metric]:
    """Requests, errors and latency per route template (``runtime.requests``)."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    labels = ["method", "route"]
    requests = CounterMetricFamily(
        "raspapi_http_requests", "HTTP requests answered since start", labels=labels
    )
    errors = CounterMetricFamily(
        "raspapi_http_request_errors",
        "HTTP requests answered with an error since start (client: 4xx, server: 5xx)",
        labels=[*labels, "kind"],
    )
    for stats in runtime.requests.snapshot():
        key = [stats.method, stats.route]
        requests.add_metric(key, stats.total.requests)
        errors.add_metric([*key, "client"], stats.total.client_errors)
        errors.add_metric([*key, "server"], stats.total.server_errors)
    latency = HistogramMetricFamily(
        "raspapi_http_request_duration_seconds",
        "Time from a request's arrival to its response's start",
        labels=labels,
    )
    for method, route, cumulative, seconds, _count in runtime.requests.histogram():
        buckets = [("+Inf" if math.isinf(le) else repr(le), n) for le, n in cumulative]
        latency.add_metric([method, route], buckets, seconds)
    yield requests
    yield errors
    yield latency


def routes(exporter: Exporter) -> list[ApiRoute]:
    return [
        ApiRoute(
            "/metrics",
            exporter.endpoint,
            methods=["GET"],
            scope="read",
            media_types=("text/plain", "application/openmetrics-text"),
        )
    ]
