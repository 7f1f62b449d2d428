"""The wireguard plugin's history samples and Prometheus metrics, from its snapshot."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import WireGuard


async def samples(wg: WireGuard) -> dict[str, float]:
    """``wireguard.<interface>.connected_peers``, and each live peer's
    ``wireguard.<interface>.<public key>.rx_bytes`` and ``tx_bytes``.

    Called only when an interface runs (the samples hook looks first)."""
    out: dict[str, float] = {}
    for interface in (await wg.snapshot()).interfaces:
        if not interface["up"]:
            continue
        name = interface["name"]
        out[f"wireguard.{name}.connected_peers"] = float(interface["connected_peer_count"])
        for peer in interface["peers"]:
            if peer["live"]:
                out[f"wireguard.{name}.{peer['public_key']}.rx_bytes"] = float(peer["rx_bytes"])
                out[f"wireguard.{name}.{peer['public_key']}.tx_bytes"] = float(peer["tx_bytes"])
    return out


async def families(wg: WireGuard) -> list[Any]:
    """Per interface: up, peers, connected peers. Per peer (by interface, public key and
    name): bytes received and sent, the latest handshake (Unix time, 0 for none), and
    whether it is connected."""
    snapshot = await wg.snapshot()
    # The same family objects until the next refresh: /metrics renders them once.
    made: tuple[Any, list[Any]] | None = wg.ctx.state.get("metric_families")
    if made is not None and made[0] is snapshot:
        return made[1]
    out = _families(snapshot)
    wg.ctx.state["metric_families"] = (snapshot, out)
    return out


def _families(snapshot: Any) -> list[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    up = GaugeMetricFamily(
        "wireguard_interface_up", "1 when the interface is up", labels=["interface"]
    )
    peers = GaugeMetricFamily(
        "wireguard_interface_peers", "Peers, live or configured", labels=["interface"]
    )
    connected_peers = GaugeMetricFamily(
        "wireguard_interface_connected_peers",
        "Peers with a handshake in the last 3 minutes",
        labels=["interface"],
    )
    labels = ["interface", "public_key", "name"]
    received = CounterMetricFamily(
        "wireguard_peer_receive_bytes", "Bytes received from the peer", labels=labels
    )
    sent = CounterMetricFamily(
        "wireguard_peer_transmit_bytes", "Bytes sent to the peer", labels=labels
    )
    handshake = GaugeMetricFamily(
        "wireguard_peer_last_handshake_seconds",
        "Unix time of the peer's latest handshake (0: none yet)",
        labels=labels,
    )
    connected = GaugeMetricFamily(
        "wireguard_peer_connected",
        "1 when the peer's latest handshake is under 3 minutes old",
        labels=labels,
    )
    seen: set[tuple[str, str]] = set()
    for interface in snapshot.interfaces:
        name = interface["name"]
        if interface["up"] is not None:
            up.add_metric([name], 1 if interface["up"] else 0)
        peers.add_metric([name], interface["peer_count"])
        connected_peers.add_metric([name], interface["connected_peer_count"])
        for peer in interface["peers"]:
            if (name, peer["public_key"]) in seen:
                continue
            seen.add((name, peer["public_key"]))
            key = [name, peer["public_key"], peer["name"] or ""]
            connected.add_metric(key, 1 if peer["connected"] else 0)
            if not peer["live"]:
                continue
            received.add_metric(key, peer["rx_bytes"])
            sent.add_metric(key, peer["tx_bytes"])
            at = peer["latest_handshake_at"]
            handshake.add_metric(key, datetime.fromisoformat(at).timestamp() if at else 0)
    return [up, peers, connected_peers, received, sent, handshake, connected]


async def watch_handshakes(wg: WireGuard) -> None:
    """Publishes ``wireguard.handshake`` when a live peer's latest handshake moves,
    and ``wireguard.peer.connected`` / ``.disconnected`` when its state flips.
    The first look only records what is there."""
    seen: dict[tuple[str, str], tuple[str | None, bool]] | None = wg.ctx.state.get("handshakes")
    now: dict[tuple[str, str], tuple[str | None, bool]] = {}
    for interface in (await wg.snapshot()).interfaces:
        for peer in interface["peers"]:
            if not peer["live"]:
                continue
            key = (interface["name"], peer["public_key"])
            now[key] = (peer["latest_handshake_at"], peer["connected"])
            if seen is None:
                continue
            before_at, before_connected = seen.get(key, (None, False))
            data = {
                "interface": interface["name"],
                "public_key": peer["public_key"],
                "name": peer["name"],
                "latest_handshake_at": peer["latest_handshake_at"],
            }
            if peer["latest_handshake_at"] is not None and peer["latest_handshake_at"] != before_at:
                wg.ctx.events.publish("wireguard.handshake", data)
            if peer["connected"] != before_connected:
                state = "connected" if peer["connected"] else "disconnected"
                wg.ctx.events.publish(f"wireguard.peer.{state}", data)
    wg.ctx.state["handshakes"] = now
