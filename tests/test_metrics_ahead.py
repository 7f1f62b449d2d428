"""Scrape-ahead (raspapi/telemetry/ahead.py): the exporter learns a steady scraper's
cadence and collects just before its next scrape, so the scrape waits for no refresh;
no timer when nobody scrapes or off cadence; one collection at a time; the separate
listener on the same renderer."""

from __future__ import annotations

import asyncio
import gzip
import logging
import textwrap
import time
import urllib.request
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.settings import Settings
from raspapi.telemetry.ahead import Key, ScrapeAhead
from tests.conftest import AUTH, MakeClient, loop_factory, run_on

KEY: Key = ("http", "text/plain; version=0.0.4; charset=utf-8")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def armed(ahead: ScrapeAhead) -> bool:
    """Whether a collection is scheduled (a call: mypy would keep an attribute narrowed)."""
    return ahead.armed


async def _nothing(scrapers: list[tuple[Key, str]]) -> None:
    return None


def test_cadence_learned_after_two_steady_intervals(loop_name: str):
    async def main() -> None:
        clock = Clock()
        ahead = ScrapeAhead(_nothing, ttl=1.0, clock=clock)
        assert not armed(ahead)  # idle: no timer
        ahead.scraped(KEY, "")
        clock.now += 15
        ahead.scraped(KEY, "")
        assert not armed(ahead) and ahead.cadence(KEY) is None  # one interval is no cadence
        clock.now += 15.9  # within 10 % of 15
        ahead.scraped(KEY, "")
        assert armed(ahead) and ahead.cadence(KEY) == pytest.approx(15.9)
        await ahead.close()  # shutdown cancels the timer
        assert not armed(ahead)
        ahead.scraped(KEY, "")
        assert not armed(ahead)  # and none after it

    run_on(loop_name, main())


@pytest.mark.parametrize(
    "intervals",
    [
        (15.0, 5.0),  # a scrape off the cadence
        (15.0, 17.0),  # more than 10 % apart
        (0.5, 0.5),  # steady, but within the plugins' stale window
        (2.9, 2.9),  # steady, but under three cache periods
        (700.0, 700.0),  # steady, but over 10 minutes
    ],
)
def test_no_timer_off_cadence(loop_name: str, intervals: tuple[float, float]):
    async def main() -> None:
        clock = Clock()
        ahead = ScrapeAhead(_nothing, ttl=1.0, clock=clock)
        ahead.scraped(KEY, "")
        for interval in intervals:
            clock.now += interval
            ahead.scraped(KEY, "")
        assert not armed(ahead)
        await ahead.close()

    run_on(loop_name, main())


def test_runs_once_per_expected_scrape_then_stops(loop_name: str, caplog: pytest.LogCaptureFixture):
    """Short real intervals: the collection runs before the expected scrape, once;
    with no scrape after it, no timer is left. A failing collection is logged once."""
    calls: list[float] = []

    async def failing(scrapers: list[tuple[Key, str]]) -> None:
        calls.append(time.monotonic())
        assert scrapers == [(KEY, "text/plain")]
        raise OSError("hook exploded")

    async def main() -> None:
        # A 15 ms lead (a quarter of the cache period): a loaded machine's timer
        # lateness of a few milliseconds does not carry the run past the scrape.
        ahead = ScrapeAhead(failing, ttl=0.06)
        ahead.min_interval = 0.1
        for cycle in range(2):
            times = []
            for _ in range(3):
                times.append(time.monotonic())
                ahead.scraped(KEY, "text/plain")
                await asyncio.sleep(0.25)
            expected = times[-1] + times[-1] - times[-2]
            if not _steady(times):
                pytest.skip("the sleeps were too irregular on this machine to keep a cadence")
            await asyncio.sleep(0.5)  # two intervals without a scrape
            assert not armed(ahead)
            assert len(calls) == cycle + 1
            # It ran ahead of the scrape expected after the last one, not after it.
            assert calls[-1] < expected
        await ahead.close()

    with caplog.at_level(logging.WARNING, "raspapi.metrics"):
        run_on(loop_name, main())
    failures = [r for r in caplog.records if "ahead of a scrape failed" in r.getMessage()]
    assert len(failures) == 1, failures


def _steady(times: list[float]) -> bool:
    """Whether three arrival times keep a cadence well within the 10 % allowed."""
    first, second = times[1] - times[0], times[2] - times[1]
    return abs(second - first) < 0.05 * first


SLOW_PLUGIN = """
    import asyncio, time
    from prometheus_client.core import GaugeMetricFamily
    from raspapi import hookimpl

    loads = []

    async def load():
        started = time.monotonic()
        await asyncio.sleep(0.3)
        loads.append((started, time.monotonic()))
        return [GaugeMetricFamily("slowpoke_loads", "Loads so far", value=len(loads))]

    @hookimpl
    async def raspapi_metrics(ctx):
        # As the built-in plugins: the last families for two cache periods.
        return await ctx.cache.get("families", load, stale=2 * ctx.cache.ttl)
    """


def _dropin(settings: Settings, name: str, source: str) -> None:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / f"{name}.py").write_text(textwrap.dedent(source))


def _loads(text: str) -> int:
    line = next(x for x in text.splitlines() if x.startswith("slowpoke_loads "))
    return int(float(line.split()[1]))


def test_a_scrape_on_cadence_waits_for_no_refresh(
    settings: Settings, make_client: MakeClient, loop_name: str
):
    """A plugin whose refresh takes 0.3 s: the scrapes that teach the cadence wait
    for it; the one on cadence gets the refresh run just before it, at once."""
    _dropin(settings, "slowpoke", SLOW_PLUGIN)
    # Over three cache periods and a collection: every scrape that is not helped
    # finds the families expired, past their stale window (2 x 0.5 s after the load).
    # A cadence is learned only above three cache periods and the slowest of the
    # last collections (1.5 s + 0.3 s here): 2.5 s leaves 0.7 s for a loaded
    # machine's first, slower scrape (0.51 s was seen in CI, against a 2 s interval).
    interval = 2.5
    client = make_client(loop=loop_name, cache_ttl=0.5)
    exporter = client.app.state.exporter  # type: ignore[attr-defined]
    start = time.monotonic()
    elapsed: list[float] = []
    served: list[int] = []
    sent: list[float] = []
    for n in range(4):
        time.sleep(max(0.0, start + n * interval - time.monotonic()))
        sent.append(time.monotonic())
        response = client.get("/metrics", headers=AUTH)
        elapsed.append(time.monotonic() - sent[-1])
        assert response.status_code == 200
        served.append(_loads(response.text))
    # The first three scrapes waited for a refresh each (no cadence yet).
    assert served[:3] == [1, 2, 3]
    assert min(elapsed[:3]) >= 0.3
    if not _steady(sent[:3]) or not _steady(sent[1:]):
        pytest.skip("the scrapes were too irregular on this machine to keep a cadence")
    if 3 * 0.5 + max(elapsed[:3]) > 0.95 * interval:
        pytest.skip("the collections were too slow on this machine for a cadence to be learned")
    (key,) = exporter.ahead._scrapers  # one scraper, and its cadence learned
    assert exporter.ahead.cadence(key) == pytest.approx(interval, rel=0.05)
    # The fourth: the refresh ran ahead (a fourth load), and the scrape did not wait.
    assert served[3] == 4
    assert elapsed[3] < 0.3, elapsed
    assert not exporter._ready  # the text rendered ahead is used once
    # Nobody scrapes any more: one more collection ahead of the missed scrape, then
    # no timer.
    assert armed(exporter.ahead)
    deadline = time.monotonic() + 2 * interval
    while armed(exporter.ahead) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not armed(exporter.ahead)
    runs = exporter.ahead.runs
    time.sleep(interval)
    assert exporter.ahead.runs == runs == 2


def test_text_rendered_ahead_is_served_once_within_a_cache_period(client: TestClient):
    exporter = client.app.state.exporter  # type: ignore[attr-defined]
    text_type = "text/plain; version=0.0.4; charset=utf-8"
    key = ("http", text_type)
    now = exporter.ahead.clock()
    exporter._ready[key] = (now - 1.5, b"too old\n", text_type)  # cache period: 1 s
    assert "node_load1 0.42" in client.get("/metrics", headers=AUTH).text
    exporter._ready[key] = (exporter.ahead.clock(), b"made ahead\n", text_type)
    assert client.get("/metrics", headers=AUTH).text == "made ahead\n"
    assert "node_load1 0.42" in client.get("/metrics", headers=AUTH).text  # once
    assert not exporter._ready


def test_one_collection_at_a_time(settings: Settings, make_client: MakeClient, loop_name: str):
    """Scrapes arriving together share one collection (one hook call), and get
    the same families."""
    _dropin(
        settings,
        "counted",
        """
        import asyncio
        from prometheus_client.core import GaugeMetricFamily
        from raspapi import hookimpl

        calls = []

        @hookimpl
        async def raspapi_metrics(ctx):
            calls.append(1)
            await asyncio.sleep(0.2)
            return [GaugeMetricFamily("counted_calls", "Hook calls", value=len(calls))]
        """,
    )
    client = make_client(loop=loop_name)
    exporter = client.app.state.exporter  # type: ignore[attr-defined]

    async def together() -> list[Any]:
        return list(await asyncio.gather(*(exporter.families() for _ in range(3))))

    results = client.portal.call(together)  # type: ignore[union-attr]
    assert results[0] is results[1] is results[2]
    values = [f.samples[0].value for f in results[0] if f.name == "counted_calls"]
    assert values == [1]
    # Once done, the next scrape collects anew.
    again = client.portal.call(exporter.families)  # type: ignore[union-attr]
    assert [f.samples[0].value for f in again if f.name == "counted_calls"] == [2]


def test_shutdown_cancels_the_timer(settings: Settings, loop_name: str):
    app = create_app(settings)
    options = {"loop_factory": loop_factory(loop_name)}
    with TestClient(app, backend_options=options) as client:
        exporter = app.state.exporter
        clock = Clock()
        exporter.ahead.clock = clock
        for _ in range(3):
            assert client.get("/metrics", headers=AUTH).status_code == 200
            clock.now += 60
        assert armed(exporter.ahead)  # the next collection is a minute away
    assert not armed(exporter.ahead)


def test_the_listener_uses_the_renderer_and_scrape_ahead(make_client: MakeClient):
    client = make_client(metrics_address=("127.0.0.1", 0))
    exporter = client.app.state.exporter  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{exporter.listener_port}"
    openmetrics = "application/openmetrics-text; version=1.0.0"
    request = urllib.request.Request(
        f"{base}/metrics", headers={"Accept": openmetrics, "Accept-Encoding": "gzip"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("application/openmetrics-text")
        assert answer.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(answer.read()).decode()
    assert text.endswith("# EOF\n") and "node_load1 0.42\n" in text
    (content_type,) = exporter._rendered  # the fast renderer's cache, for this format
    assert content_type.startswith(openmetrics) and exporter._rendered[content_type]
    assert ("listener", content_type) in exporter.ahead._scrapers
    with urllib.request.urlopen(f"{base}/favicon.ico", timeout=10) as answer:
        assert answer.read() == b""
    post = urllib.request.Request(f"{base}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    assert refused.value.code == 405
