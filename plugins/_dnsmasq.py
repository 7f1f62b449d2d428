"""dnsmasq's configuration files, shared by the dhcp and dns plugins.

A module whose name starts with ``_`` is not loaded as a plugin: it is a
private helper of the built-in plugins.
"""

from __future__ import annotations

import os

from raspapi.plugin import PluginContext

DNSMASQ_CONF = "/etc/dnsmasq.conf"
DNSMASQ_DIR = "/etc/dnsmasq.d"
#: dnsmasq.d files read at most (a bound on a folder anyone with root can fill).
MAX_CONF_FILES = 256


def dnsmasq_files(ctx: PluginContext) -> list[str]:
    """/etc/dnsmasq.conf and /etc/dnsmasq.d/*.conf that exist, as machine paths.

    Blocking (a folder scan): call it from a cache loader or a thread.
    """
    files = [DNSMASQ_CONF] if ctx.path(DNSMASQ_CONF).is_file() else []
    names: list[str] = []
    try:
        with os.scandir(ctx.path(DNSMASQ_DIR)) as entries:
            for entry in entries:
                if entry.name.endswith(".conf") and not entry.name.startswith("."):
                    names.append(entry.name)
                    if len(names) >= 4 * MAX_CONF_FILES:
                        break
    except OSError:
        pass
    files += [f"{DNSMASQ_DIR}/{name}" for name in sorted(names)[:MAX_CONF_FILES]]
    return [f for f in files if ctx.path(f).is_file()]
