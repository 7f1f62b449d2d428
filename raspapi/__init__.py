"""raspapi: a fast, plugin-based control daemon for Raspberry Pi access points."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: The marker plugins put on their hook implementations: ``@hookimpl``.
hookimpl = pluggy.HookimplMarker("raspapi")

__all__ = ["__version__", "hookimpl"]
