"""Parser of ``wg show all dump``: live interfaces and peers, never a private key.

``wg`` prints one tab-separated line per interface (name, private key, public
key, listen port, fwmark) followed by one line per peer (name, public key,
preshared key, endpoint, allowed IPs, latest handshake, rx, tx, persistent
keepalive). The private and preshared keys are dropped while parsing: only
whether a peer has a preshared key survives.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class LivePeer:
    public_key: str
    has_preshared_key: bool
    endpoint: str | None
    allowed_ips: list[str]
    #: Unix time of the latest handshake; None when there was none.
    latest_handshake: int | None
    rx_bytes: int
    tx_bytes: int
    persistent_keepalive: int | None


@dataclass(slots=True)
class LiveInterface:
    name: str
    public_key: str | None
    listen_port: int | None
    fwmark: int | None
    peers: list[LivePeer] = field(default_factory=list)


def _none(value: str) -> str | None:
    return None if value in ("(none)", "") else value


def _int(value: str) -> int:
    try:
        return max(int(value), 0)
    except ValueError:
        return 0


def _optional_int(value: str, *, base: int = 10) -> int | None:
    if value in ("off", "(none)", ""):
        return None
    try:
        number = int(value, base)
    except ValueError:
        return None
    return number or None


def parse_dump(text: str) -> dict[str, LiveInterface]:
    """Interfaces by name, in the order ``wg`` printed them. Odd lines are skipped."""
    interfaces: dict[str, LiveInterface] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            name, _private, public, port, fwmark = fields
            interfaces[name] = LiveInterface(
                name=name,
                public_key=_none(public),
                listen_port=_optional_int(port),
                fwmark=_optional_int(fwmark, base=0),
            )
        elif len(fields) == 9:
            name, public, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
            iface = interfaces.get(name)
            if iface is None:
                continue
            iface.peers.append(
                LivePeer(
                    public_key=public,
                    has_preshared_key=_none(psk) is not None,
                    endpoint=_none(endpoint),
                    allowed_ips=[a for a in allowed.split(",") if a and a != "(none)"],
                    latest_handshake=_optional_int(handshake),
                    rx_bytes=_int(rx),
                    tx_bytes=_int(tx),
                    persistent_keepalive=_optional_int(keepalive),
                )
            )
    return interfaces
