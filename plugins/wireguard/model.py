"""The answer of ``/api/v1/wireguard``: live state merged with the config files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from raspapi.plugin import rfc3339

from .config import PeerSection
from .dump import LiveInterface, LivePeer
from .files import ConfigFile

#: A peer is connected when its latest handshake is at most this old (WireGuard
#: re-keys every 2 minutes while traffic flows, so 180 s leaves a margin).
CONNECTED_SECONDS = 180


def _peer(
    live: LivePeer | None, conf: PeerSection | None, public_key: str, now: float
) -> dict[str, Any]:
    handshake = live.latest_handshake if live is not None else None
    age = max(0, int(now - handshake)) if handshake is not None else None
    if live is not None:
        endpoint, allowed, keepalive = live.endpoint, live.allowed_ips, live.persistent_keepalive
        has_psk = live.has_preshared_key
    else:
        assert conf is not None
        endpoint, allowed, keepalive = conf.endpoint, conf.allowed_ips, conf.persistent_keepalive
        has_psk = conf.has_preshared_key
    return {
        "public_key": public_key,
        "name": conf.name if conf is not None else None,
        "endpoint": endpoint,
        "allowed_ips": list(allowed),
        "latest_handshake_at": rfc3339(handshake) if handshake is not None else None,
        "handshake_age_seconds": age,
        "rx_bytes": live.rx_bytes if live is not None else 0,
        "tx_bytes": live.tx_bytes if live is not None else 0,
        "persistent_keepalive_seconds": keepalive,
        "connected": age is not None and age <= CONNECTED_SECONDS,
        "has_preshared_key": has_psk,
        "live": live is not None,
        "in_config": conf is not None,
    }


def interface(
    name: str,
    live: LiveInterface | None,
    conf: ConfigFile | None,
    *,
    live_known: bool,
    link_up: bool,
    derived_public_key: str | None,
    now: float,
) -> dict[str, Any]:
    section = conf.config.interface if conf is not None else None
    live_peers = {p.public_key: p for p in live.peers} if live is not None else {}
    peers: list[dict[str, Any]] = []
    seen: set[str] = set()
    for peer_conf in conf.config.peers if conf is not None else []:
        key = peer_conf.public_key
        if key is None or key in seen:
            continue
        seen.add(key)
        peers.append(_peer(live_peers.get(key), peer_conf, key, now))
    for key, peer_live in live_peers.items():
        if key not in seen:
            peers.append(_peer(peer_live, None, key, now))
    listen_port = live.listen_port if live is not None else None
    fwmark = live.fwmark if live is not None else None
    return {
        "name": name,
        "up": (live is not None and link_up) if live_known else None,
        "public_key": live.public_key if live is not None else derived_public_key,
        "listen_port": listen_port or (section.listen_port if section else None),
        "fwmark": fwmark or (section.fwmark if section else None),
        "address": list(section.addresses) if section else [],
        "config_file": conf.file_name if conf is not None else None,
        "peer_count": len(peers),
        "connected_peer_count": sum(1 for p in peers if p["connected"]),
        "rx_bytes": sum(p["rx_bytes"] for p in peers),
        "tx_bytes": sum(p["tx_bytes"] for p in peers),
        "peers": peers,
    }


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Snapshot:
    """One refresh: built at most once per cache period, whatever the load."""

    taken_at: float
    interfaces: list[dict[str, Any]]
    live_error: str | None
    config_error: str | None
    #: The rendered answers, so a poll costs no JSON encoding.
    body: bytes = b""
    #: time.monotonic() when it was taken.
    loaded: float = field(default_factory=time.monotonic)
    bodies: dict[str, bytes] = field(default_factory=dict)

    def render(self) -> Snapshot:
        self.body = dumps(
            {
                "updated_at": rfc3339(self.taken_at),
                "live_error": self.live_error,
                "config_error": self.config_error,
                "interfaces": self.interfaces,
            }
        )
        self.bodies = {i["name"]: dumps(i) for i in self.interfaces}
        return self

    def find(self, name: str) -> dict[str, Any] | None:
        return next((i for i in self.interfaces if i["name"] == name), None)


def build(
    live: dict[str, LiveInterface] | None,
    live_error: str | None,
    configs: dict[str, ConfigFile],
    config_error: str | None,
    flags: dict[str, bool],
    derived: dict[str, str | None],
) -> Snapshot:
    """Every interface, live or configured, with its peers; rendered once."""
    now = time.time()
    configs = dict(configs)
    # The other end of a peer of ours (RaspAP's client.conf for a phone) is
    # not an interface of this machine: its key is a peer of a running
    # interface or of a config that listens, and it does not listen itself.
    served = {p.public_key for i in (live or {}).values() for p in i.peers}
    for conf in configs.values():
        if conf.config.interface and conf.config.interface.listen_port:
            served |= {p.public_key for p in conf.config.peers if p.public_key}
    for name, key in derived.items():
        section = configs[name].config.interface
        if key in served and not (section and section.listen_port):
            del configs[name]
    interfaces = [
        interface(
            name,
            (live or {}).get(name),
            configs.get(name),
            live_known=live is not None,
            link_up=flags.get(name, True),
            derived_public_key=derived.get(name),
            now=now,
        )
        for name in sorted(set(live or {}) | set(configs))
    ]
    return Snapshot(now, interfaces, live_error, config_error).render()
