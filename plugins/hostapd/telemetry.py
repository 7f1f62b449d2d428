"""The hostapd plugin's history samples and Prometheus metrics.

Station counters are as the access point counts them: ``receive`` is what
the access point received from the station (hostapd's ``rx_bytes``).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from .service import METRICS_KEY, Hostapd


async def _interfaces(hostapd: Hostapd) -> list[str]:
    loaded = await hostapd.loaded()
    return loaded.conf.interfaces() if loaded.conf is not None else []


def read_samples(hostapd: Hostapd) -> dict[str, float] | Awaitable[dict[str, float]]:
    """Blocking (the samples' worker thread): ``{}`` without a round trip when
    nothing can answer (no hostapd.conf, no interface in it, or no control socket
    file), as :func:`samples` would find; else :func:`samples`, for the loop."""
    loaded = hostapd.read_config()
    if loaded.conf is None or not loaded.conf.interface:
        return {}
    if not loaded.ctrl.get(loaded.conf.interface, False):
        return {}
    return samples(hostapd)


async def samples(hostapd: Hostapd) -> dict[str, float]:
    """``wifi.stations`` and ``wifi.<interface>.stations``, while hostapd runs."""
    if not await hostapd.running():
        return {}
    per = Counter(str(s["interface"]) for s in await hostapd.stations())
    out = {"wifi.stations": float(sum(per.values()))}
    for interface in [*await _interfaces(hostapd), *per]:
        out[f"wifi.{interface}.stations"] = float(per.get(interface, 0))
    return out


#: Station fields exported, by metric: (field, kind, help, scale).
_STATION = {
    "hostapd_station_signal_dbm": ("signal_dbm", "gauge", "Signal of the station, dBm", 1),
    "hostapd_station_receive_bytes": (
        "rx_bytes",
        "counter",
        "Bytes the access point received from the station",
        1,
    ),
    "hostapd_station_transmit_bytes": (
        "tx_bytes",
        "counter",
        "Bytes the access point sent to the station",
        1,
    ),
    "hostapd_station_receive_packets": (
        "rx_packets",
        "counter",
        "Packets the access point received from the station",
        1,
    ),
    "hostapd_station_transmit_packets": (
        "tx_packets",
        "counter",
        "Packets the access point sent to the station",
        1,
    ),
    "hostapd_station_receive_bitrate_bps": (
        "rx_bitrate_kbps",
        "gauge",
        "Bit rate of the last frame received from the station, bits per second",
        1000,
    ),
    "hostapd_station_transmit_bitrate_bps": (
        "tx_bitrate_kbps",
        "gauge",
        "Bit rate of the last frame sent to the station, bits per second",
        1000,
    ),
    "hostapd_station_connected_seconds": (
        "connected_seconds",
        "gauge",
        "How long the station has been associated",
        1,
    ),
    "hostapd_station_inactive_seconds": (
        "inactive_ms",
        "gauge",
        "Time since the station was last heard",
        0.001,
    ),
}


async def families(hostapd: Hostapd) -> list[Any]:
    """``hostapd_up``, ``hostapd_stations`` per interface, and per station (by interface
    and MAC) signal, traffic, bit rates, connected and inactive time.

    The first scrape waits for them. Later ones never wait on the control socket,
    hostapd.conf or building the families: the last families are answered at once
    (within two cache periods) while the next are built behind them.
    """
    result: list[Any] = await hostapd.ctx.cache.get(
        METRICS_KEY, functools.partial(_build, hostapd), stale=hostapd.stale_seconds
    )
    return result


async def _build(hostapd: Hostapd) -> list[Any]:
    """The families from hostapd's ``STATUS``, a sweep and hostapd.conf, none served stale."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    running = await hostapd.running()
    out: list[Any] = [
        GaugeMetricFamily(
            "hostapd_up", "1 when hostapd answers on its control socket", value=int(running)
        )
    ]
    if not running:
        return out
    stations = await hostapd.stations(fresh=True)
    loaded = await hostapd.loaded()
    # The same family objects until the next sweep: /metrics renders them once.
    made: tuple[Any, Any, list[Any]] | None = hostapd.ctx.state.get("metric_families")
    if made is not None and made[0] is stations and made[1] is loaded:
        return made[2]
    interfaces = loaded.conf.interfaces() if loaded.conf is not None else []
    per = Counter(str(s["interface"]) for s in stations)
    count = GaugeMetricFamily("hostapd_stations", "Wi-Fi stations associated", labels=["interface"])
    for interface in dict.fromkeys([*interfaces, *per]):
        count.add_metric([interface], per.get(interface, 0))
    out.append(count)
    labels = ["interface", "mac"]
    families = {
        name: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
            name, text, labels=labels
        )
        for name, (_, kind, text, _) in _STATION.items()
    }
    seen: set[tuple[str, str]] = set()
    for station in stations:
        key = (str(station["interface"]), str(station["mac"]))
        if key in seen:
            continue
        seen.add(key)
        for name, (field, _, _, scale) in _STATION.items():
            value = station.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                families[name].add_metric(list(key), value * scale)
    out.extend(families.values())
    hostapd.ctx.state["metric_families"] = (stations, loaded, out)
    return out
