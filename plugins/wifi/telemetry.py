"""The wifi plugin's history samples, Prometheus metrics and admin panel."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from raspapi.plugin import (
    Panel,
)

if TYPE_CHECKING:
    from .service import Wifi


def read_samples(wifi: Wifi) -> dict[str, float] | Awaitable[dict[str, float]]:
    """Blocking (the samples' worker thread): ``{}`` without a round trip when no
    client interface has a control socket (and none is left open to close);
    else :func:`samples`, for the loop."""
    if not wifi.sockets and not wifi._list():
        return {}
    return samples(wifi)


async def samples(wifi: Wifi) -> dict[str, float]:
    """``wifi.<interface>.signal_dbm`` of each connected client interface."""
    out: dict[str, float] = {}
    for view in await wifi.overview():
        if view.get("signal_dbm") is not None:
            out[f"wifi.{view['interface']}.signal_dbm"] = float(view["signal_dbm"])
    return out


async def families(wifi: Wifi) -> list[Any]:
    """``wifi_client_connected`` and ``wifi_client_signal_dbm`` per interface."""
    from prometheus_client.core import GaugeMetricFamily

    connected = GaugeMetricFamily(
        "wifi_client_connected",
        "1 when the Wi-Fi client interface is connected (wpa_state COMPLETED)",
        labels=["interface"],
    )
    signal = GaugeMetricFamily(
        "wifi_client_signal_dbm",
        "Signal of the upstream access point, dBm",
        labels=["interface"],
    )
    for view in await wifi.overview():
        connected.add_metric([view["interface"]], int(bool(view.get("connected"))))
        if view.get("signal_dbm") is not None:
            signal.add_metric([view["interface"]], view["signal_dbm"])
    return [connected, signal]


async def panel(wifi: Wifi) -> Panel:
    """The upstream network of each client interface."""
    views = await wifi.overview()
    if not views:
        return Panel("Upstream Wi-Fi", text=await wifi.not_running())
    rows: list[tuple[str, Any]] = []
    for view in views:
        if view.get("connected"):
            parts = [str(view["ssid"]), view["state"]]
            if view.get("signal_dbm") is not None:
                parts.append(f"{view['signal_dbm']} dBm")
            if view.get("band"):
                parts.append(f"{view['band']} GHz")
            if view.get("ip_address"):
                parts.append(str(view["ip_address"]))
            rows.append((view["interface"], ", ".join(parts)))
        else:
            rows.append((view["interface"], view.get("error") or view["state"]))
    return Panel(
        "Upstream Wi-Fi",
        text="The networks this box joins through wpa_supplicant.",
        rows=rows,
        links=[("API", "/docs#/wifi")],
    )
