"""The networking plugin's history samples and Prometheus metrics."""

from __future__ import annotations

import os
import time
from typing import Any

from raspapi.plugin import PluginContext

from .service import (
    MAX_INTERFACES,
    MIN_RATE_INTERVAL,
    PROC_NET_DEV,
    SYS_NET,
    Link,
    _int,
    _read,
    _sys_counters,
    parse_proc_net_dev,
    read_links,
    valid_ifname,
)


def _counters(ctx: PluginContext) -> dict[str, dict[str, int]]:
    """Each interface's counters, exactly as ``read_links`` finds them (/proc/net/dev,
    else the interface's statistics folder), without reading its other attributes."""
    base = ctx.path(SYS_NET)
    dev = parse_proc_net_dev(_read(ctx.path(PROC_NET_DEV), limit=1 << 20))
    try:
        names = [n for n in os.listdir(base)[:MAX_INTERFACES] if valid_ifname(n)]
    except OSError:
        names = list(dev)
    out: dict[str, dict[str, int]] = {}
    for name in names:
        counters = dev.get(name)
        if counters is None:
            counters = _sys_counters(base / name)
        if counters is not None:
            out[name] = counters
    return out


def _sample_rates(ctx: PluginContext, counters: dict[str, dict[str, int]]) -> dict[str, float]:
    """Bytes per second since the previous sample, per interface (lo left out)."""
    now = time.monotonic()
    base: tuple[float, dict[str, dict[str, int]]] | None = ctx.state.get("sample_base")
    if base is not None and now - base[0] < MIN_RATE_INTERVAL:
        last: dict[str, float] = ctx.state.get("sample_rates", {})
        return last
    ctx.state["sample_base"] = (now, counters)
    out: dict[str, float] = {}
    if base is not None:
        elapsed = now - base[0]
        for name, new in counters.items():
            old = base[1].get(name)
            if name == "lo" or old is None:
                continue
            for key in ("rx_bytes", "tx_bytes"):
                if new[key] >= old[key]:
                    out[f"net.{name}.{key}_per_second"] = round((new[key] - old[key]) / elapsed, 2)
    ctx.state["sample_rates"] = out
    return out


def samples(ctx: PluginContext) -> dict[str, float]:
    """``net.<interface>.rx_bytes_per_second`` and ``tx_bytes_per_second`` (blocking:
    the samples' worker thread calls it). Only the counters are read."""
    return _sample_rates(ctx, _counters(ctx))


#: node_exporter's names for the 16 columns of a /proc/net/dev line.
_NETDEV = tuple(
    f"{side}_{name}"
    for side, names in (
        (
            "receive",
            ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast"),
        ),
        (
            "transmit",
            ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed"),
        ),
    )
    for name in names
)
#: /sys/class/net/<iface>/flags: IFF_UP, which ``adminstate`` reports.
_IFF_UP = 0x1


def _netdev_columns(text: str | None) -> dict[str, list[int]]:
    """All 16 counters per interface from /proc/net/dev; malformed lines are skipped."""
    out: dict[str, list[int]] = {}
    for line in (text or "").splitlines()[2 : MAX_INTERFACES + 2]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        try:
            numbers = [int(f) for f in rest.split()[:16]]
        except ValueError:
            continue
        if sep and valid_ifname(name) and len(numbers) == 16 and min(numbers) >= 0:
            out[name] = numbers
    return out


def _node_facts(ctx: PluginContext, links: list[Link]) -> dict[str, Any]:
    """What node_exporter's netdev and netclass collectors read beyond ``Link``."""
    base = ctx.path(SYS_NET)
    info: dict[str, tuple[str, ...]] = {}
    nohandler: dict[str, int] = {}
    speed: dict[str, int] = {}
    for link in links:
        directory = base / link.name
        # node_exporter reports the raw value, -1 (unknown) included: -125000 bytes/s.
        mbps = _int(_read(directory / "speed"))
        if mbps is not None:
            speed[link.name] = mbps
        dropped = _int(_read(directory / "statistics" / "rx_nohandler"))
        if dropped is not None:
            nohandler[link.name] = dropped
        raw = _read(directory / "flags") or ""
        try:
            flags = int(raw, 16)
        except ValueError:
            flags = None
        info[link.name] = (
            link.mac_address or "",
            (_read(directory / "broadcast") or "").lower(),
            _read(directory / "duplex") or "",
            link.operstate,
            "" if flags is None else ("up" if flags & _IFF_UP else "down"),
            (_read(directory / "ifalias", limit=256) or ""),
        )
    dev = _netdev_columns(_read(ctx.path(PROC_NET_DEV), limit=1 << 20))
    return {"dev": dev, "info": info, "nohandler": nohandler, "speed": speed}


async def metrics(ctx: PluginContext) -> list[Any]:
    """node_exporter's ``node_network_*`` counters (every /proc/net/dev column) and its
    netclass facts (up, info, MTU, speed, carrier), per interface."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    # A scrape after the cache period gets the last refresh while the next one runs.
    stale = 2 * ctx.cache.ttl
    links: list[Link] = await ctx.cache.get("links", lambda: read_links(ctx), stale=stale)
    facts: dict[str, Any] = await ctx.cache.get(
        "node", lambda: _node_facts(ctx, links), stale=stale
    )
    counters = [
        CounterMetricFamily(
            f"node_network_{name}", f"Network device statistic {name}.", labels=["device"]
        )
        for name in _NETDEV
    ]
    for device, numbers in facts["dev"].items():
        for family, number in zip(counters, numbers, strict=True):
            family.add_metric([device], number)
    nohandler = CounterMetricFamily(
        "node_network_receive_nohandler",
        "Network device statistic receive_nohandler.",
        labels=["device"],
    )
    for device, number in facts["nohandler"].items():
        nohandler.add_metric([device], number)
    counters.append(nohandler)
    up = GaugeMetricFamily(
        "node_network_up", "Value is 1 if operstate is 'up', 0 otherwise.", labels=["device"]
    )
    info = GaugeMetricFamily(
        "node_network_info",
        "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
        labels=["device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"],
    )
    mtu = GaugeMetricFamily(
        "node_network_mtu_bytes", "Network device property: mtu_bytes", labels=["device"]
    )
    speed = GaugeMetricFamily(
        "node_network_speed_bytes", "Network device property: speed_bytes", labels=["device"]
    )
    carrier = GaugeMetricFamily(
        "node_network_carrier", "Network device property: carrier", labels=["device"]
    )
    for link in links:
        up.add_metric([link.name], 1 if link.operstate == "up" else 0)
        if link.name in facts["info"]:
            info.add_metric([link.name, *facts["info"][link.name]], 1)
        if link.mtu is not None:
            mtu.add_metric([link.name], link.mtu)
        if link.name in facts["speed"]:
            speed.add_metric([link.name], facts["speed"][link.name] * 125_000)
        if link.carrier is not None:
            carrier.add_metric([link.name], 1 if link.carrier else 0)
    return [*counters, up, info, mtu, speed, carrier]
