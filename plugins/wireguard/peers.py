"""New peers: input checks, keys from ``wg``, the next free address, client config and QR code."""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from raspapi.plugin import (
    CommandRunner,
    Invalid,
    parse_int,
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

#: What wg-quick accepts as an interface name (the config's file name).
INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")
_KEY = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
NAME_MAX = 64
MAX_NETWORKS = 64
#: Candidates tried when looking for a free address: far more than peers exist.
_ALLOCATION_TRIES = 1 << 16
DEFAULT_CLIENT_ALLOWED_IPS = ("0.0.0.0/0", "::/0")
DEFAULT_KEEPALIVE = 25


def interface_name(raw: str) -> str:
    if not INTERFACE_NAME.match(raw) or raw in (".", ".."):
        raise Invalid("interface", "not an interface name (1 to 15 of A-Z a-z 0-9 _ = + . -)")
    return raw


def public_key(raw: str, field_name: str = "public_key") -> str:
    """A peer's key from a path or body: standard base64 (``+``, ``/``) or URL-safe (``-``, ``_``).

    The trailing ``=`` may be left out. Answers the canonical standard form.
    """
    key = raw.strip().replace("-", "+").replace("_", "/")
    if len(key) == 43:
        key += "="
    if len(key) != 44 or not _KEY.match(key):
        raise Invalid(field_name, "not a WireGuard key (44 characters of base64 ending in '=')")
    try:
        if len(base64.b64decode(key, validate=True)) != 32:
            raise ValueError
    except (binascii.Error, ValueError):
        raise Invalid(field_name, "not a WireGuard key (32 bytes in base64)") from None
    return key


def peer_name(raw: Any) -> str:
    if not isinstance(raw, str):
        raise Invalid("name", "must be a string")
    name = raw.strip()
    if not name:
        raise Invalid("name", "must not be empty")
    if len(name) > NAME_MAX:
        raise Invalid("name", f"must be at most {NAME_MAX} characters")
    if not name.isprintable():
        raise Invalid("name", "must not contain newlines or other control characters")
    return name


def networks(raw: Any, field_name: str) -> list[IPNetwork]:
    """A list of networks (``10.0.0.0/24``; a bare address means /32 or /128)."""
    items = _strings(raw, field_name)
    out: list[IPNetwork] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            try:
                loose = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise Invalid(field_name, f"{item!r} is not an IP network") from None
            raise Invalid(
                field_name, f"{item!r} has host bits set; did you mean {loose}?"
            ) from None
    return out


def addresses(raw: Any, field_name: str) -> list[str]:
    out: list[str] = []
    for item in _strings(raw, field_name):
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise Invalid(field_name, f"{item!r} is not an IP address") from None
    return out


def _strings(raw: Any, field_name: str) -> list[str]:
    if isinstance(raw, str):
        raw = [part for part in raw.split(",")]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise Invalid(field_name, "must be a list of strings (or one comma-separated string)")
    items = [item.strip() for item in raw if item.strip()]
    if len(items) > MAX_NETWORKS:
        raise Invalid(field_name, f"at most {MAX_NETWORKS} entries")
    return items


def endpoint(raw: str, field_name: str = "endpoint") -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    text = raw.strip()
    port: int | None = None
    host = text
    if text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        host = inner
        if not sep or (rest and not rest.startswith(":")):
            raise Invalid(field_name, f"{raw!r} is not host, host:port or [IPv6]:port")
        if rest:
            port = _port_of(rest[1:], field_name)
    elif text.count(":") == 1:
        host, _, tail = text.partition(":")
        port = _port_of(tail, field_name)
    if not _valid_host(host):
        raise Invalid(field_name, f"{host!r} is not a host name or IP address")
    return host, port


def host_from_header(value: str | None) -> str | None:
    """The host a client reached us by (the ``Host`` header without its port)."""
    if not value:
        return None
    try:
        host, _ = endpoint(value, "Host")
    except Invalid:
        return None
    return host


def _port_of(text: str, field_name: str) -> int:
    port = parse_int(text, low=1, high=65535)
    if port is None or text.startswith("-"):
        raise Invalid(field_name, f"port {text[:16]!r} is not a number from 1 to 65535")
    return port


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AllocationError(Exception):
    """The interface's config leaves no address to give (no Address, or a full subnet)."""


def allocate(interface_addresses: Iterable[str], taken: Iterable[str]) -> list[IPInterface]:
    """The lowest free host address in each address family of the interface's subnet.

    ``taken``: every AllowedIPs entry of the interface's peers (config and
    live). Networks outside the subnet (``0.0.0.0/0`` of a client) don't count.
    Raises AllocationError when the interface has no Address or its subnet is full.
    """
    subnets: dict[int, IPInterface] = {}
    for text in interface_addresses:
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            continue
        subnets.setdefault(iface.version, iface)
    if not subnets:
        raise AllocationError("its config has no usable Address to take peer addresses from")
    used: list[IPNetwork] = []
    for text in taken:
        try:
            used.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    own = {ipaddress.ip_interface(a).ip for a in interface_addresses if _is_interface(a)}
    out: list[IPInterface] = []
    for version, server in sorted(subnets.items()):
        subnet = server.network
        inside = [n for n in used if n.version == version and n.subnet_of(subnet)]  # type: ignore[arg-type]
        for candidate in itertools.islice(subnet.hosts(), _ALLOCATION_TRIES):
            if candidate in own or any(candidate in n for n in inside):
                continue
            out.append(ipaddress.ip_interface(f"{candidate}/{subnet.max_prefixlen}"))
            break
        else:
            raise AllocationError(f"no free address left in {subnet}")
    return out


def _is_interface(text: str) -> bool:
    try:
        ipaddress.ip_interface(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class KeyMaterial:
    private_key: str = field(repr=False)
    public_key: str
    preshared_key: str = field(repr=False)


async def generate_keys(runner: CommandRunner) -> KeyMaterial:
    """A key pair and a preshared key from ``wg``; keys go through pipes, never argv."""
    private = (await runner.run(["wg", "genkey"], timeout=10)).text.strip()
    public = (
        await runner.run(["wg", "pubkey"], input=(private + "\n").encode(), timeout=10)
    ).text.strip()
    psk = (await runner.run(["wg", "genpsk"], timeout=10)).text.strip()
    for key in (private, public, psk):
        if not _KEY.match(key):
            raise RuntimeError("wg printed something that is not a key")
    return KeyMaterial(private, public, psk)


async def derive_public_key(runner: CommandRunner, private: str) -> str | None:
    result = await runner.run(["wg", "pubkey"], input=(private + "\n").encode(), timeout=10)
    key = result.text.strip()
    return key if _KEY.match(key) else None


def server_block(name: str, keys: KeyMaterial, allowed: list[str]) -> list[str]:
    """The ``[Peer]`` section appended to the interface's config."""
    return [
        "[Peer]",
        f"# Name = {name}",
        f"PublicKey = {keys.public_key}",
        f"PresharedKey = {keys.preshared_key}",
        f"AllowedIPs = {', '.join(allowed)}",
    ]


def client_config(
    *,
    name: str,
    keys: KeyMaterial,
    address: list[str],
    dns: list[str],
    server_public_key: str,
    endpoint: str,
    allowed_ips: list[str],
    keepalive: int | None,
) -> str:
    lines = ["[Interface]", f"# Name = {name}", f"PrivateKey = {keys.private_key}"]
    lines.append(f"Address = {', '.join(address)}")
    if dns:
        lines.append(f"DNS = {', '.join(dns)}")
    lines += [
        "",
        "[Peer]",
        f"PublicKey = {server_public_key}",
        f"PresharedKey = {keys.preshared_key}",
        f"Endpoint = {endpoint}",
        f"AllowedIPs = {', '.join(allowed_ips)}",
    ]
    if keepalive:
        lines.append(f"PersistentKeepalive = {keepalive}")
    return "\n".join(lines) + "\n"


def qr_svg(text: str) -> str:
    """An SVG QR code the WireGuard phone app scans ("Scan from QR code")."""
    import segno  # only when a peer is added: it costs 30 ms and memory at start-up

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="svg", scale=4, border=4, xmldecl=False)
    return buffer.getvalue().decode()


def qr_png(text: str) -> bytes:
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=6, border=4)
    return buffer.getvalue()
