"""wg-quick configuration files: read them, and add or remove a peer keeping every other byte.

A config is kept as its raw lines (with their own line endings), so a rewrite
changes only the lines of the peer added or removed: comments, blank lines,
key spelling, ``PostUp`` commands and unknown keys stay exactly as they were.

Peer names come from comments (wg-quick ignores them), in one of these forms:

* ``# Name = phone`` or ``# Name: phone`` (any case, any number of ``#``),
  either inside the ``[Peer]`` section or in the comment lines directly above
  its header (no blank line in between);
* PiVPN's ``### begin phone ###`` line directly above the header.

A name inside the section wins over one above it. The ``[Interface]`` section
may carry ``# Endpoint = vpn.example.com:51820``: the host (and port) phones
should connect to, used in the client configs this plugin hands out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = re.compile(r"^\s*#+\s*name\s*[=:]\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_PIVPN = re.compile(r"^\s*#+\s*begin\s+(?P<value>.+?)\s*#*\s*$", re.IGNORECASE)
_PIVPN_END = re.compile(r"^\s*#+\s*end\s+.+?#*\s*$", re.IGNORECASE)
_ENDPOINT = re.compile(r"^\s*#+\s*endpoint\s*[=:]\s*(?P<value>\S+)\s*$", re.IGNORECASE)
_HEADER = re.compile(r"^\s*\[\s*(?P<name>[A-Za-z]+)\s*\]\s*$")


@dataclass
class InterfaceSection:
    addresses: list[str] = field(default_factory=list)
    listen_port: int | None = None
    fwmark: int | None = None
    dns: list[str] = field(default_factory=list)
    #: ``# Endpoint = host[:port]`` from a comment in the section.
    endpoint_hint: str | None = None
    #: Read to derive the public key of a down interface; never put in an answer.
    private_key: str | None = field(default=None, repr=False)


@dataclass
class PeerSection:
    public_key: str | None = None
    name: str | None = None
    allowed_ips: list[str] = field(default_factory=list)
    endpoint: str | None = None
    persistent_keepalive: int | None = None
    has_preshared_key: bool = False
    #: Line indexes: first line of the section (its name comments above the
    #: header included), the header, and one past the last line.
    start: int = 0
    header: int = 0
    end: int = 0


@dataclass
class WgConfig:
    lines: list[str]
    interface: InterfaceSection | None
    peers: list[PeerSection]

    @property
    def text(self) -> str:
        return "".join(self.lines)

    @property
    def newline(self) -> str:
        """The file's own line ending (``\\r\\n`` for a file written on Windows)."""
        for line in self.lines:
            if line.endswith("\r\n"):
                return "\r\n"
            if line.endswith("\n"):
                return "\n"
        return "\n"

    def peer(self, public_key: str) -> PeerSection | None:
        return next((p for p in self.peers if p.public_key == public_key), None)

    def with_peer(self, block: list[str]) -> str:
        """The file's text with ``block`` (lines without endings) appended as a section.

        Every existing byte stays; a blank line separates the new section.
        """
        nl = self.newline
        text = self.text
        if text and not text.endswith("\n"):
            text += nl
        if text.strip():
            text += nl
        return text + "".join(line + nl for line in block)

    def without_peer(self, public_key: str) -> str | None:
        """The file's text without that peer's section (None if it has none).

        The section's lines go, with its name comments above the header; when
        it was the last section, so do the blank lines before it, so adding a
        peer and removing it again gives back the same bytes.
        """
        peer = self.peer(public_key)
        if peer is None:
            return None
        start = peer.start
        if peer.end >= len(self.lines):
            while start > 0 and not self.lines[start - 1].strip():
                start -= 1
        return "".join(self.lines[:start] + self.lines[peer.end :])


def _content(line: str) -> str:
    """The line without its comment, as wg-quick reads it."""
    return line.split("#", 1)[0].strip()


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _port(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < int(value) < 65536 else None


def _list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _name_in(line: str, *, above: bool) -> str | None:
    match = _NAME.match(line) or (_PIVPN.match(line) if above else None)
    if match is None:
        return None
    return match.group("value") or None


def parse(text: str) -> WgConfig:
    lines = text.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER.match(_content(line) or "-")]
    # The comment lines directly above a header belong to that header's section.
    starts: dict[int, int] = {}
    for index in headers:
        start = index
        while (
            start > 0 and _is_comment(lines[start - 1]) and not _PIVPN_END.match(lines[start - 1])
        ):
            start -= 1
        starts[index] = start
    interface: InterfaceSection | None = None
    peers: list[PeerSection] = []
    for position, index in enumerate(headers):
        end = starts[headers[position + 1]] if position + 1 < len(headers) else len(lines)
        match = _HEADER.match(_content(lines[index]))
        assert match is not None
        kind = match.group("name").lower()
        body = lines[index + 1 : end]
        if kind == "interface" and interface is None:
            interface = _interface(body)
        elif kind == "peer":
            peer = _peer(body)
            peer.start, peer.header, peer.end = starts[index], index, end
            if peer.name is None:
                for line in lines[starts[index] : index]:
                    peer.name = peer.name or _name_in(line, above=True)
            peers.append(peer)
    return WgConfig(lines, interface, peers)


def _pairs(body: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in body:
        content = _content(line)
        key, sep, value = content.partition("=")
        if sep:
            out.append((key.strip().lower(), value.strip()))
    return out


def _interface(body: list[str]) -> InterfaceSection:
    section = InterfaceSection()
    for key, value in _pairs(body):
        if key == "address":
            section.addresses += _list(value)
        elif key == "listenport":
            section.listen_port = _port(value)
        elif key == "fwmark":
            try:
                section.fwmark = int(value, 0) or None
            except ValueError:
                section.fwmark = None
        elif key == "dns":
            section.dns += _list(value)
        elif key == "privatekey":
            section.private_key = value or None
    for line in body:
        match = _ENDPOINT.match(line)
        if match is not None:
            section.endpoint_hint = match.group("value")
            break
    return section


def _peer(body: list[str]) -> PeerSection:
    section = PeerSection()
    for key, value in _pairs(body):
        if key == "publickey":
            section.public_key = value or None
        elif key == "allowedips":
            section.allowed_ips += _list(value)
        elif key == "endpoint":
            section.endpoint = value or None
        elif key == "persistentkeepalive":
            section.persistent_keepalive = (
                int(value) if value.isdigit() and int(value) > 0 else None
            )
        elif key == "presharedkey":
            section.has_preshared_key = bool(value)
    for line in body:
        if _is_comment(line) and (name := _name_in(line, above=False)):
            section.name = name
            break
    return section
