"""What a plugin shows on the admin page (``raspapi_admin_panels``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Panel:
    """A section on the plugin's admin page, ``/admin/plugins/<plugin>``.

    ``text`` is a paragraph, ``rows`` a table of (label, value) pairs, ``links``
    (label, href) pairs where href is a path on this daemon (``"/docs"``) or an
    ``http(s)://`` URL. Everything is shown as plain text (HTML is escaped),
    so values read from the machine are safe to pass as they are.
    """

    title: str
    text: str = ""
    rows: Sequence[tuple[str, Any]] = ()
    links: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError("a panel needs a title")
        for row in self.rows:
            if not isinstance(row, tuple) or len(row) != 2:
                raise ValueError(f"panel rows are (label, value) pairs, not {row!r}")
        for link in self.links:
            if not isinstance(link, tuple) or len(link) != 2:
                raise ValueError(f"panel links are (label, href) pairs, not {link!r}")
            href = str(link[1])
            local = href.startswith("/") and not href.startswith("//")
            if not (local or href.startswith(("http://", "https://"))):
                raise ValueError(f"a panel link must be a /path or an http(s) URL, not {href!r}")
