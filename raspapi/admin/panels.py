"""What a plugin shows on the admin page (``raspapi_admin_panels``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Bar:
    """One bar of a panel's chart: a label, its length as a fraction of the
    widest (0 to 1), the value written after it, and ``alert`` to draw it in
    the warning colour. The page draws the chart as inline SVG, no script."""

    label: str
    fraction: float
    value: str = ""
    alert: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.fraction, int | float) or not math.isfinite(self.fraction):
            raise ValueError(f"a bar's fraction is a number from 0 to 1, not {self.fraction!r}")
        object.__setattr__(self, "fraction", min(1.0, max(0.0, float(self.fraction))))


@dataclass(frozen=True)
class Panel:
    """A section on the plugin's admin page, ``/admin/plugins/<plugin>``.

    ``text`` is a paragraph, ``rows`` a table of (label, value) pairs, ``links``
    (label, href) pairs where href is a path on this daemon (``"/docs"``) or an
    ``http(s)://`` URL, ``bars`` a horizontal bar chart (:class:`Bar`, at most
    50). Everything is shown as plain text (HTML is escaped), so values read
    from the machine are safe to pass as they are.
    """

    title: str
    text: str = ""
    rows: Sequence[tuple[str, Any]] = ()
    links: Sequence[tuple[str, str]] = ()
    bars: Sequence[Bar] = ()

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
        if len(self.bars) > 50 or not all(isinstance(b, Bar) for b in self.bars):
            raise ValueError("panel bars are at most 50 Bar objects")
