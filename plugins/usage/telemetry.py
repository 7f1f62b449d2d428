"""The usage plugin's Prometheus counters and admin panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raspapi.plugin import (
    Bar,
    Panel,
)

if TYPE_CHECKING:
    from .service import Usage

#: Devices on the admin page's chart.
PANEL_DEVICES = 10


async def families(usage: Usage) -> list[Any]:
    """``raspapi_client_{receive,transmit}_bytes_total{mac,hostname}``: every byte
    since the device was first seen (reconnects and restarts included), for the
    devices seen in the last RASPAPI_USAGE_METRICS_DAYS days, the
    RASPAPI_USAGE_METRICS_DEVICES largest; the rest are summed as mac="other".

    The same family objects for a cache period, and those of the last query
    while the next runs (two periods), as the other plugins' families: a
    scrape neither waits for the store nor renders them again."""
    ctx = usage.ctx
    made: list[Any] = await ctx.cache.get(
        "metrics", lambda: _families(usage), stale=2 * ctx.cache.ttl
    )
    return made


async def _families(usage: Usage) -> list[Any]:
    from prometheus_client.core import CounterMetricFamily

    db = await usage.open()
    options = usage.options
    since = usage.clock() - options.metrics_days * 86400
    rows = await usage.store.run(lambda _: db.lifetime(since, options.metrics_devices))
    receive = CounterMetricFamily(
        "raspapi_client_receive_bytes",
        "Bytes the access point received from the device (what it uploaded)",
        labels=["mac", "hostname"],
    )
    transmit = CounterMetricFamily(
        "raspapi_client_transmit_bytes",
        "Bytes the access point sent to the device (what it downloaded)",
        labels=["mac", "hostname"],
    )
    for mac, hostname, rx, tx in rows:
        receive.add_metric([mac, hostname or ""], rx)
        transmit.add_metric([mac, hostname or ""], tx)
    return [receive, transmit]


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


async def panels(usage: Usage) -> list[Panel]:
    now = usage.clock()
    day = usage.day_of(now)
    devices = await usage.report(usage.day_start(day), now + 1, "day", PANEL_DEVICES)
    states = {s["mac"]: s for s in await usage.quota_states(now)}
    widest = max((d["total_bytes"] for d in devices), default=0) or 1
    bars = []
    for device in devices:
        state = states.get(device["mac"])
        value = human(device["total_bytes"])
        if state is not None:
            value += f" of {human(state['limit_bytes'])}"
            if state["state"] != "ok":
                value += f", {state['state']}"
        label = device["hostname"] or device["mac"]
        alert = state is not None and state["state"] != "ok"
        bars.append(Bar(label, device["total_bytes"] / widest, value, alert))
    today = Panel(
        "Today's top devices",
        text=(
            f"Bytes up and down since local midnight ({day}), the {PANEL_DEVICES} largest."
            if devices
            else "No traffic yet today."
        ),
        bars=bars,
        links=[("Usage API", "/docs#/usage")],
    )
    rows = [
        (s["mac"], f"{s['state']}: {human(s['used_bytes'])} of {human(s['limit_bytes'])}")
        for s in states.values()
        if s["state"] != "ok"
    ]
    quotas = Panel(
        "Quotas",
        text=(
            f"{len(usage.quotas)} quota(s) set; {len(rows)} device(s) over theirs."
            if usage.quotas
            else "No quota is set (PUT /api/v1/usage/quotas/default)."
        ),
        rows=rows[:50],
    )
    return [today, quotas]
