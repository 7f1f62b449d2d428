"""The ``raspapi`` command: serve, keygen, plugins, check."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from collections.abc import Sequence
from typing import NamedTuple

from raspapi import __version__
from raspapi.context import Status
from raspapi.daemon import logs
from raspapi.http.errors import StartupError
from raspapi.security.adminkey import (
    GUI_GROUP,
    KEY_NAME,
    AdminKey,
    generate_key,
    gui_group,
    set_env_value,
)
from raspapi.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="raspapi", description="Control daemon for Raspberry Pi access points."
    )
    parser.add_argument("--version", action="version", version=f"raspapi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the daemon")
    p.add_argument("--host", help="address to bind (default RASPAPI_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default RASPAPI_PORT or 8081)")
    p = sub.add_parser("keygen", help="print a new 32-character API key")
    p.add_argument("--save", action="store_true", help=f"also save it as {KEY_NAME}")
    sub.add_parser("plugins", help="list plugins: name, source, status, routes")
    sub.add_parser("check", help="check configuration, key file, service install and plugins")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except StartupError as exc:
        print(f"raspapi: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "serve":
            return _serve(settings, args.host, args.port)
        if args.command == "keygen":
            return _keygen(settings, args.save)
        if args.command == "plugins":
            return _plugins(settings)
        return _check(settings)
    except StartupError as exc:
        print(f"raspapi: {exc}", file=sys.stderr)
        return 2


def _serve(settings: Settings, host: str | None, port: int | None) -> int:
    from raspapi.daemon.server import serve

    if host:
        settings = settings.with_(host=host)
    if port is not None:
        if not 1 <= port <= 65535:
            raise StartupError(f"--port {port} is out of range 1..65535")
        settings = settings.with_(port=port)
    logs.configure(settings.log_level)
    serve(settings)
    return 0


def _keygen(settings: Settings, save: bool) -> int:
    key = generate_key()
    if save:
        try:
            set_env_value(settings.env_file, KEY_NAME, key)
        except OSError as exc:
            print(
                f"raspapi: cannot write {settings.env_file}: {exc.strerror or exc}", file=sys.stderr
            )
            return 1
        print(
            f"saved {KEY_NAME} to {settings.env_file} "
            f"(mode {stat.S_IMODE(settings.env_file.stat().st_mode):04o}); a running daemon "
            "uses it at once",
            file=sys.stderr,
        )
        if settings.api_key_override:
            print(
                f"note: {KEY_NAME} is also set in the environment, which wins over the file",
                file=sys.stderr,
            )
    print(key)
    return 0


class _Report(NamedTuple):
    name: str
    source: str
    status: Status
    routes: list[str]


def _inspect(settings: Settings) -> list[_Report]:
    from raspapi.app import create_app
    from raspapi.daemon.runtime import Runtime

    app = create_app(settings.with_(access_log=False))
    runtime: Runtime = app.state.runtime
    manager = runtime.manager

    async def run() -> dict[str, Status]:
        await manager.startup()
        try:
            return await manager.statuses()
        finally:
            await manager.shutdown()

    statuses = asyncio.run(run())
    return [
        _Report(name, plugin.source, statuses[name], [r.path for r in plugin.routes])
        for name, plugin in manager.plugins.items()
    ]


def _plugins(settings: Settings) -> int:
    logs.configure("critical")
    reports = _inspect(settings)
    rows = [("NAME", "SOURCE", "STATUS", "ROUTES")]
    for r in reports:
        state = r.status.state + (f": {r.status.reason}" if r.status.reason else "")
        rows.append((r.name, r.source, state, ", ".join(r.routes) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0


def _check(settings: Settings) -> int:
    logs.configure("critical")
    problems = 0

    def ok(text: str) -> None:
        print(f"ok    {text}")

    def fail(text: str, fix: str) -> None:
        nonlocal problems
        problems += 1
        print(f"FAIL  {text}\n      fix: {fix}")

    ok(f"configuration: env file {settings.env_file}, root {settings.root}, port {settings.port}")
    key = AdminKey(settings.env_file, settings.api_key_override)
    if settings.api_key_override:
        ok(f"API key: set by the {KEY_NAME} environment variable")
    elif not settings.env_file.exists():
        fail(
            f"no key file at {settings.env_file}",
            "run `raspapi keygen --save` (or start the daemon once: it makes one)",
        )
    else:
        st = settings.env_file.stat()
        mode = stat.S_IMODE(st.st_mode)
        if key.current() is None:
            fail(f"{settings.env_file} has no {KEY_NAME}", "run `raspapi keygen --save`")
        else:
            ok(f"API key: {KEY_NAME} in {settings.env_file}")
        gui = gui_group(settings.env_file)
        if mode & 0o037 or (mode & 0o040 and (gui is None or st.st_gid != gui)):
            fail(
                f"{settings.env_file} has mode {mode:04o}; others can read the key",
                f"chmod 600 {settings.env_file}"
                + (f" (or chgrp {GUI_GROUP} and chmod 640 for RaspAP's GUI)" if gui else ""),
            )
        elif mode & 0o040:
            ok(f"key file mode {mode:04o}, group {GUI_GROUP}: RaspAP's GUI can show the key")
        else:
            ok(f"key file mode {mode:04o}")
        if not os.access(settings.env_file, os.R_OK):
            fail(
                f"{settings.env_file} is not readable by this user",
                "run the check as the service's user (root)",
            )
    from raspapi.daemon import installation  # `check` only: http.client, the unit file

    for finding in installation.check(settings):
        if finding.ok:
            ok(finding.text)
        else:
            fail(finding.text, finding.fix)
    for r in _inspect(settings):
        if r.status.state in ("ok", "disabled", "unavailable"):
            ok(
                f"plugin {r.name}: {r.status.state}"
                + (f" ({r.status.reason})" if r.status.reason else "")
            )
        else:
            fail(
                f"plugin {r.name} ({r.source}): {r.status.state}: {r.status.reason}",
                f"fix the plugin, or disable it with RASPAPI_DISABLE={r.name}",
            )
    print(f"{problems} problem(s)" if problems else "all good")
    return 1 if problems else 0
