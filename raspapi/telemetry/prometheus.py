"""Prometheus exposition: ``GET /metrics`` (read scope) and, when
``RASPAPI_METRICS_ADDRESS`` is set, a second listener for a scraper that
serves only the metrics, without a key.

The families come from every plugin's ``raspapi_metrics`` hook (gathered
concurrently, each timed, one that raises or hangs left out), plus the
daemon's own: version, plugin states, per-plugin collection time and success,
requests per route template (count, errors, latency histogram, from
``runtime.requests``), and the process (CPU, memory, file descriptors). The text is
rendered in a thread with the official client library, so a scrape never
blocks the event loop. prometheus_client is imported on the first scrape:
a daemon nobody scrapes never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import Response

from raspapi import __version__
from raspapi.http.routing import ApiRoute

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from raspapi.daemon.runtime import Runtime

log = logging.getLogger("raspapi.metrics")

#: How long the separate listener waits for one collection.
LISTENER_TIMEOUT = 10.0
STATES = ("ok", "degraded", "unavailable", "failed", "disabled")
#: The content type render_text writes (choose_encoder's default).
TEXT_0_0_4 = "text/plain; version=0.0.4"


_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: How prometheus_client's text format renames a family's type (and suffixes it).
_TYPES = {
    "counter": ("_total", "counter"),
    "info": ("_info", "gauge"),
    "stateset": ("", "gauge"),
    "gaugehistogram": ("", "histogram"),
    "unknown": ("", "untyped"),
}
_OPENMETRICS_ONLY = ("_created", "_gsum", "_gcount")


#: Rendered text by family: ``id(family)`` -> (family, its sample count, its text).
RenderCache = dict[int, tuple["Metric", int, str]]


def render_text(families: Iterable[Metric], cache: RenderCache | None = None) -> bytes:
    """The Prometheus text format (0.0.4), byte for byte what prometheus_client's
    ``generate_latest`` writes, several times faster: names are checked once per
    family instead of once per sample. A family with a name outside the classic
    character set is handed to ``generate_latest`` itself.

    With ``cache``, a family object rendered by the previous call (the same object,
    with as many samples) is not rendered again: a plugin that serves the families of
    its last refresh until the next one is rendered once per refresh. The cache keeps
    only the families of this call."""
    from prometheus_client.utils import floatToGoString

    number = cast(Callable[[float], str], floatToGoString)
    out: list[str] = []
    kept: RenderCache = {}
    for metric in families:
        if cache is not None:
            hit = cache.get(id(metric))
            if hit is not None and hit[0] is metric and hit[1] == len(metric.samples):
                kept[id(metric)] = hit
                out.append(hit[2])
                continue
        text = _family_text(metric, number)
        if cache is not None:
            kept[id(metric)] = (metric, len(metric.samples), text)
        out.append(text)
    if cache is not None:
        cache.clear()
        cache.update(kept)
    return "".join(out).encode("utf-8")


def _family_text(metric: Metric, number: Callable[[float], str]) -> str:
    if not _plain_names(metric):
        from prometheus_client.exposition import generate_latest

        return generate_latest(_Families([metric])).decode()
    suffix, kind = _TYPES.get(metric.type, ("", metric.type))
    name = metric.name + suffix
    text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    out = [f"# HELP {name} {text}\n# TYPE {name} {kind}\n"]
    later: dict[str, list[str]] = {}
    orders: dict[tuple[str, ...], list[str]] = {}
    for sample in metric.samples:
        labels = sample.labels
        if labels:
            keys = tuple(labels)
            order = orders.get(keys)
            if order is None:
                order = orders[keys] = sorted(keys)
            pairs = ",".join(f'{k}="{_escape(labels[k])}"' for k in order)
            line = f"{sample.name}{{{pairs}}} {number(sample.value)}"
        else:
            line = f"{sample.name} {number(sample.value)}"
        if sample.timestamp is not None:
            line += f" {int(float(sample.timestamp) * 1000):d}"
        extra = sample.name[len(metric.name) :]
        if extra in _OPENMETRICS_ONLY and sample.name.startswith(metric.name):
            later.setdefault(extra, []).append(line + "\n")
        else:
            out.append(line + "\n")
    for extra, lines in sorted(later.items()):
        out.append(f"# HELP {metric.name}{extra} {text}\n# TYPE {metric.name}{extra} gauge\n")
        out.extend(lines)
    return "".join(out)


def _plain_names(metric: Metric) -> bool:
    if not _METRIC_NAME.fullmatch(metric.name):
        return False
    seen: set[tuple[str, ...]] = set()
    for sample in metric.samples:
        if not _METRIC_NAME.fullmatch(sample.name):
            return False
        keys = tuple(sample.labels)
        if keys not in seen:
            seen.add(keys)
            for key in keys:
                if not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
                    return False
    return True


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class _Families:
    """A collector holding families already gathered (what generate_latest reads)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


class Exporter:
    """One per app: gathers the families, renders them, runs the optional listener."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._process: list[Any] | None = None
        self._rendered: RenderCache = {}
        self._server: Any = None
        self._thread: threading.Thread | None = None

    async def families(self) -> list[Metric]:
        manager = self.runtime.manager
        plugin_families, statuses = await asyncio.gather(manager.metrics(), manager.statuses())
        return [*self._core(statuses), *plugin_families, *self._process_families()]

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

    def _process_families(self) -> Iterator[Metric]:
        if self._process is None:
            from prometheus_client import PlatformCollector, ProcessCollector

            self._process = [
                ProcessCollector(registry=None),
                PlatformCollector(registry=None),
            ]
        for collector in self._process:
            yield from collector.collect()

    async def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition text (OpenMetrics when ``accept`` asks for it) and its type."""
        from prometheus_client.exposition import choose_encoder

        families = await self.families()
        encoder, content_type = choose_encoder(accept)
        # The classic text format, whatever CONTENT_TYPE_LATEST says in this version of
        # the library (0.22 made it 1.0.0, while choose_encoder still answers 0.0.4).
        if content_type.startswith(TEXT_0_0_4):
            body = await asyncio.to_thread(render_text, families, self._rendered)
        else:  # OpenMetrics, when the scraper asks for it
            body = await asyncio.to_thread(encoder, _Families(families))
        return body, content_type

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
        """Serve /metrics without a key on ``RASPAPI_METRICS_ADDRESS``, if set."""
        address = self.runtime.settings.metrics_address
        if address is None:
            return
        from prometheus_client import start_http_server

        loop = asyncio.get_running_loop()
        exporter = self

        class FromLoop:
            """Collected on the event loop for the listener's thread."""

            def collect(self) -> Iterator[Metric]:
                future = asyncio.run_coroutine_threadsafe(exporter.families(), loop)
                yield from future.result(LISTENER_TIMEOUT)

        host, port = address
        try:
            self._server, self._thread = start_http_server(port, host, registry=FromLoop())
        except OSError as exc:
            log.error(
                "cannot serve metrics on %s:%d (RASPAPI_METRICS_ADDRESS): %s",
                host,
                port,
                exc.strerror or exc,
            )
            return
        log.info("metrics for scrapers, without a key: http://%s:%d/metrics", host, port)

    @property
    def listener_port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    async def stop_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()


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
