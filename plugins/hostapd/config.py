"""hostapd.conf: read it as hostapd does, rewrite single settings in place.

hostapd reads ``key=value`` lines: the key is everything before the first
``=``, the value everything after it, verbatim (no quotes, no inline
comments). Lines starting with ``#`` are comments. A later line for the same
key wins. ``bss=<ifname>`` starts the settings of a further BSS; the lines
before the first one are the radio's and the first BSS's.

Rewriting keeps every other line byte for byte (comments, unknown keys,
blank lines, line endings); the text is decoded with ``surrogateescape`` so
bytes that are not UTF-8 survive a round trip too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

PATH = "/etc/hostapd/hostapd.conf"
DEFAULT_CTRL_DIR = "/var/run/hostapd"
#: Settings whose values are secrets (shown to admin keys only).
SECRET = re.compile(r"pass|psk|secret|wep_key|r[01]kh|private_key", re.IGNORECASE)


class _Line(NamedTuple):
    text: str
    key: str | None = None
    value: str | None = None
    section: int = 0


class HostapdConf:
    """A parsed hostapd.conf that can render itself back."""

    def __init__(
        self, lines: list[_Line] | None = None, newline: str = "\n", final_newline: bool = True
    ) -> None:
        self.lines = lines if lines is not None else []
        self.newline = newline
        self.final_newline = final_newline

    @classmethod
    def parse(cls, text: str) -> HostapdConf:
        newline = "\r\n" if "\r\n" in text else "\n"
        raw = text.split("\n")
        final_newline = text.endswith("\n")
        if final_newline:
            raw.pop()
        lines: list[_Line] = []
        section = 0
        for row in raw:
            line = row.removesuffix("\r") if newline == "\r\n" else row
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or "=" not in line:
                lines.append(_Line(line, section=section))
                continue
            key, _, value = line.partition("=")
            key = key.strip()
            if key == "bss":
                section += 1
            lines.append(_Line(line, key, value, section))
        return cls(lines, newline, final_newline)

    def render(self) -> str:
        text = self.newline.join(line.text for line in self.lines)
        return text + self.newline if self.final_newline and self.lines else text

    # -- reading ---------------------------------------------------------------

    def values(self, section: int = 0) -> dict[str, str]:
        """The effective settings of one section: the last line of each key wins."""
        return {
            line.key: line.value
            for line in self.lines
            if line.section == section and line.key is not None and line.value is not None
        }

    def get(self, key: str, section: int = 0) -> str | None:
        return self.values(section).get(key)

    @property
    def interface(self) -> str:
        return (self.get("interface") or "").strip()

    def interfaces(self) -> list[str]:
        """The radio's interface, then each further BSS's, in file order."""
        names = [self.interface] if self.interface else []
        for line in self.lines:
            if line.key == "bss" and line.value and line.value.strip() not in names:
                names.append(line.value.strip())
        return names

    def ctrl_dir(self) -> str:
        """The control socket folder: ``ctrl_interface=`` (``DIR=...`` form too)."""
        value = (self.get("ctrl_interface") or "").strip()
        if value.startswith("DIR="):
            value = value[4:].split(" ", 1)[0]
        return value or DEFAULT_CTRL_DIR

    # -- changing ------------------------------------------------------------

    def set(self, key: str, value: str) -> None:
        """Set ``key`` in the first section: its last line is rewritten, or a
        line is added at the end of the section."""
        index = self._last(key)
        if index is not None:
            self.lines[index] = _Line(f"{key}={value}", key, value, 0)
            return
        end = next((i for i, line in enumerate(self.lines) if line.section > 0), len(self.lines))
        self.lines.insert(end, _Line(f"{key}={value}", key, value, 0))

    def delete(self, keys: Iterable[str]) -> None:
        """Drop every line of these keys from the first section."""
        drop = set(keys)
        self.lines = [line for line in self.lines if not (line.section == 0 and line.key in drop)]

    def last_of(self, keys: Iterable[str]) -> str | None:
        """Which of ``keys`` the first section sets last (hostapd applies lines in order)."""
        wanted = set(keys)
        found = None
        for line in self.lines:
            if line.section == 0 and line.key in wanted:
                found = line.key
        return found

    def _last(self, key: str) -> int | None:
        found = None
        for i, line in enumerate(self.lines):
            if line.section == 0 and line.key == key:
                found = i
        return found


def display(value: str) -> str:
    """A value safe to put in JSON (bytes that were not UTF-8 become U+FFFD)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_secret(key: str) -> bool:
    return SECRET.search(key) is not None
