"""The fast exposition renderers (``raspapi.telemetry.exposition``): byte for byte
what prometheus_client's encoders write, in every format ``/metrics`` serves."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient

#: What Prometheus 2 (first) and 3 (second) send.
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,"
    "*/*;q=0.1"
)


def daemon_families(client: TestClient) -> list[Any]:
    client.get("/api/v1/networking/eth0", headers=AUTH)  # a request family with a route
    assert client.portal is not None
    exporter = client.app.state.exporter  # type: ignore[attr-defined]
    return list(client.portal.call(exporter.families))


def odd_families() -> list[Any]:
    """Every family type, with what each format writes differently (escapes, units,
    timestamps, created, exemplars, names outside the classic set)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeHistogramMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        InfoMetricFamily,
        StateSetMetricFamily,
        SummaryMetricFamily,
        UnknownMetricFamily,
    )
    from prometheus_client.samples import Exemplar

    odd = GaugeMetricFamily("odd", 'help with \\ and \n and "', labels=["b", "a"])
    odd.add_metric(['back\\slash "quoted"\nnew line é', "x"], 1234567.0)
    odd.add_metric(["nan", "y"], float("nan"), timestamp=1700000000.25)
    odd.add_metric(["inf", "z"], float("-inf"))
    odd.add_metric(["big", "w"], 1.5e300)
    created = CounterMetricFamily("made", "with created", labels=["k"])
    created.add_metric(["v"], 3, created=1700000000.5)
    created.add_metric(["w"], 4, timestamp=1700000001)
    latency = HistogramMetricFamily("latency_seconds", "h", labels=["route"], unit="seconds")
    latency.add_metric(["/a/{b}"], [("0.1", 1), ("+Inf", 3)], 0.7)
    traced = HistogramMetricFamily("traced_seconds", "with an exemplar")
    traced.add_metric([], [("0.1", 1, Exemplar({"trace": "a1"}, 0.05)), ("+Inf", 2)], 0.3)
    temperature = GaugeMetricFamily("box_celsius", "a unit", value=21.5, unit="celsius")
    recorded = GaugeMetricFamily("job:requests:rate5m", "a recording rule's name", labels=["j"])
    recorded.add_metric(["x"], 0.5)
    reserved = GaugeMetricFamily("reserved", "a reserved label name", labels=["__meta"])
    reserved.add_metric(["m"], 1)
    # Values and label sets recur across samples and families (the renderers keep
    # what they formatted once): zero and minus zero are equal, written differently.
    zeros = GaugeMetricFamily("zeros", "signed zeros", labels=["b", "a"])
    for i, number in enumerate((0.0, -0.0, 0, -0.0, 1, 1.0, 1234567, 1234567.0, -48)):
        zeros.add_metric(["nan", "y"] if i == 0 else ["x", str(i)], number)
    return [
        odd,
        zeros,
        created,
        latency,
        traced,
        temperature,
        recorded,
        reserved,
        InfoMetricFamily("build", "i", value={"version": "1", "os": 'q"uote'}),
        StateSetMetricFamily("mode", "s", value={"on": True, "off": False}),
        SummaryMetricFamily("rtt", "s", count_value=2, sum_value=3.5),
        GaugeHistogramMetricFamily(
            "queue", "gh", buckets=[("1.0", 2), ("+Inf", 5)], gsum_value=7.5
        ),
        UnknownMetricFamily("mystery", "u", value=3),
        CounterMetricFamily("empty", "a counter with no sample yet", labels=["k"]),
        GaugeMetricFamily("dotted.name", "not a classic name", value=1),
        GaugeMetricFamily("ünïcode", "not a classic name either", value=2),
    ]


@pytest.fixture
def families(make_client: MakeClient) -> list[Any]:
    return daemon_families(make_client()) + odd_families()


def test_the_text_is_exactly_what_the_client_library_writes(families: list[Any]):
    from prometheus_client.exposition import generate_latest

    from raspapi.telemetry.exposition import Families, render_text

    assert render_text(families) == generate_latest(Families(families))


def test_openmetrics_is_exactly_what_the_client_library_writes(families: list[Any]):
    from prometheus_client.openmetrics.exposition import generate_latest

    from raspapi.telemetry.exposition import Families, RenderCache, render_openmetrics

    expected = generate_latest(Families(families))
    assert render_openmetrics(families) == expected
    assert expected.endswith(b"\n# EOF\n")
    assert expected.count(b"# EOF") == 1
    # The same from the cache, and the cache holds every family.
    cache: RenderCache = {}
    assert render_openmetrics(families, cache) == expected
    assert render_openmetrics(families, cache) == expected
    assert set(cache) == {id(f) for f in families}


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "*/*",
        "text/plain",
        "text/plain; version=0.0.4",
        "text/plain; version=1.0.0",
        "text/plain; version=1.0.0; escaping=allow-utf-8",
        "text/plain; version=1.0.0; escaping=dots",
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text; version=1.0.0; escaping=underscores",
        "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
        "application/openmetrics-text; version=1.0.0; escaping=dots",
        "application/openmetrics-text; version=1.0.0; escaping=values",
        "application/openmetrics-text; version=2.0.0",
        PROMETHEUS_2,
        PROMETHEUS_3,
    ],
)
def test_each_negotiated_format_is_the_librarys(families: list[Any], accept: str):
    """Whatever the scraper asks for, a fast renderer is used only where it writes
    exactly what the encoder ``choose_encoder`` picked writes."""
    from raspapi.telemetry.exposition import Families, renderer_for

    encoder, content_type = choose_encoder(accept)
    renderer = renderer_for(content_type)
    fast = "escaping=dots" not in accept and "escaping=values" not in accept
    fast = fast and "version=2.0.0" not in accept
    assert (renderer is not None) == fast, content_type
    if renderer is not None:
        assert renderer(families, {}, encoder) == encoder(Families(families))


def test_the_openmetrics_parser_reads_it_back(make_client: MakeClient):
    from raspapi.telemetry.exposition import render_openmetrics

    # All but the reserved label name, which the parser refuses (from the library too).
    odd = [f for f in odd_families() if f.name != "reserved"]
    families = daemon_families(make_client()) + odd
    parsed = {f.name: f for f in parse_openmetrics(render_openmetrics(families).decode())}
    checked = 0
    for family in families:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", family.name):
            # The library writes "a:b" and "a.b" as "a_b" in samples only: the parser
            # then reads a sample of another family. Ours is the same (test above).
            continue
        got = parsed[family.name]
        assert got.type == family.type, family.name
        assert got.unit == family.unit, family.name
        assert got.documentation == family.documentation, family.name
        assert got.samples == family.samples or (
            [(s.name, s.labels) for s in got.samples]
            == [(s.name, s.labels) for s in family.samples]
        ), family.name
        checked += 1
    assert checked > 40
    assert parsed["traced_seconds"].samples[0].exemplar is not None


def test_an_openmetrics_scrape_uses_the_fast_renderer(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    import raspapi.telemetry.exposition as exposition

    real = exposition.render_openmetrics
    seen: list[bytes] = []

    def spy(families: Any, cache: Any = None, fallback: Any = None) -> bytes:
        body = real(families, cache, fallback)
        assert fallback is not None
        assert body == fallback(exposition.Families(families))
        seen.append(body)
        return body

    monkeypatch.setattr(exposition, "render_openmetrics", spy)
    client = make_client()
    for accept in (PROMETHEUS_2, PROMETHEUS_3):
        response = client.get("/metrics", headers={**AUTH, "Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )
        assert response.content == seen[-1]
        names = {f.name for f in parse_openmetrics(response.text)}
        assert {"node_load1", "raspapi_http_requests", "raspapi_build_info"} <= names
    assert len(seen) == 2


def test_a_plain_scrape_uses_the_fast_text_renderer(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    import raspapi.telemetry.exposition as exposition

    calls: list[int] = []
    real = exposition.render_text

    def spy(families: Any, cache: Any = None, fallback: Any = None) -> bytes:
        calls.append(1)
        return real(families, cache, fallback)

    monkeypatch.setattr(exposition, "render_text", spy)
    client = make_client()
    response = client.get("/metrics", headers=AUTH)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "node_load1 0.42" in response.text
    assert calls == [1]


def test_one_rendering_cache_per_format(make_client: MakeClient):
    client = make_client()
    exporter = client.app.state.exporter  # type: ignore[attr-defined]
    for accept in ("", PROMETHEUS_2, "", PROMETHEUS_2):
        assert client.get("/metrics", headers={**AUTH, "Accept": accept}).status_code == 200
    assert sorted(exporter._rendered) == [
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
        "text/plain; version=0.0.4; charset=utf-8",
    ]
    # Each cache holds that format's text: the OpenMetrics one names counters bare.
    om, text = (exporter._rendered[k] for k in sorted(exporter._rendered))
    assert any(t.startswith("# HELP raspapi_http_requests ") for _, _, t in om.values())
    assert any(t.startswith("# HELP raspapi_http_requests_total ") for _, _, t in text.values())


def test_families_are_rendered_once_per_object(make_client: MakeClient):
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    from raspapi.telemetry.exposition import (
        Families,
        RenderCache,
        render_openmetrics,
        render_text,
    )

    families = daemon_families(make_client())
    grows = GaugeMetricFamily("grows", "gains samples", labels=["n"])
    grows.add_metric(["1"], 1)
    gone = CounterMetricFamily("gone", "dropped later", value=2)
    families += [grows, gone]
    for render, library in ((render_text, generate_latest), (render_openmetrics, openmetrics)):
        cache: RenderCache = {}
        first = render(families, cache, None)
        assert first == render(families, None, None) == library(Families(families))
        assert {id(f) for f in families} == set(cache)
        again = render(families, cache, None)
        assert again == first
        # Served from the cache: the same text object, not a new rendering.
        texts = {id(f): cache[id(f)][2] for f in families}
        render(families, cache, None)
        assert all(cache[id(f)][2] is texts[id(f)] for f in families)
        # A family given more samples is rendered again; one left out leaves the cache.
        grows.add_metric([str(len(grows.samples) + 1)], 2)
        kept = [f for f in families if f is not gone]
        third = render(kept, cache, None)
        assert third == library(Families(kept))
        assert f'grows{{n="{len(grows.samples)}"}} 2.0'.encode() in third
        assert id(gone) not in cache
        assert cache[id(grows)][1] == len(grows.samples)


def test_process_reads_and_rendering_stay_off_the_event_loop(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    """/proc reads of the process families and the rendering run in the exporter's
    own thread, not on the event loop nor queued behind plugin refreshes."""
    import threading

    import prometheus_client

    import raspapi.telemetry.exposition as exposition

    threads: dict[str, set[str]] = {"process": set(), "render": set()}
    collect = prometheus_client.ProcessCollector.collect
    render = exposition.render_openmetrics

    def collect_spy(self: Any) -> Any:
        threads["process"].add(threading.current_thread().name)
        return collect(self)

    def render_spy(families: Any, cache: Any = None, fallback: Any = None) -> bytes:
        threads["render"].add(threading.current_thread().name)
        return render(families, cache, fallback)

    monkeypatch.setattr(prometheus_client.ProcessCollector, "collect", collect_spy)
    monkeypatch.setattr(exposition, "render_openmetrics", render_spy)
    client = make_client()
    for _ in range(2):
        response = client.get("/metrics", headers={**AUTH, "Accept": PROMETHEUS_2})
        assert response.status_code == 200
        assert "process_open_fds" in response.text
        assert "python_info" in response.text
    assert len(threads["process"]) == len(threads["render"]) == 1
    assert threads["process"] == threads["render"]
    assert next(iter(threads["render"])).startswith("raspapi-metrics")
