"""DDNS: ddclient's configuration, read with a parser that follows ddclient's own.

ddclient.conf lines are ``[name=value[, name=value...]] [host[,host...] [login [password]]]``:
a line without hosts sets globals; settings on a host line apply to those hosts.
``#`` starts a comment (outside quotes, at the start of a word), a trailing
backslash continues the line, values may be quoted. The password is shown only
to admin keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl, is_admin

from ._handlers import bind

# -- hooks -------------------------------------------------------------------------


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    service = ctx.service(Ddns)
    return [ApiRoute("/ddns", bind(legacy_ddns, service), methods=["GET"], response=LEGACY_SCHEMA)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    return [ApiRoute("/", bind(ddns, ctx.service(Ddns)), methods=["GET"], response=API_SCHEMA)]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    problem = await ctx.service(Ddns).problem()
    return Status.ok() if problem is None else Status.unavailable(problem)


# -- schemas -----------------------------------------------------------------------

DDCLIENT_CONF = "/etc/ddclient.conf"
_NAME = re.compile(r"([A-Za-z][0-9A-Za-z_-]*)=")


_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
LEGACY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "use": _STR,
        "method": _STR,
        "protocol": _STR,
        "server": _STR,
        "login": _STR,
        "password": {**_STR, "description": '"" unless the key is an admin key'},
        "domain": _STR,
    },
}
API_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "config_file": _STR,
        "use": {**_NSTR, "description": "how ddclient finds the address: web, if, cmd..."},
        "method": {**_NSTR, "description": "the value of the setting `use` names"},
        "protocol": _NSTR,
        "server": _NSTR,
        "login": _NSTR,
        "password": {**_NSTR, "description": "null unless the key is an admin key"},
        "password_set": {"type": "boolean"},
        "hosts": {"type": "array", "items": _STR},
    },
}


# -- service -----------------------------------------------------------------------


@dataclass
class DdclientConfig:
    globals: dict[str, str] = field(default_factory=dict)
    #: Each host with its settings (the globals when its line came, then its own).
    hosts: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, str]:
        """The first host's settings (RaspAP's single-host view), else the globals."""
        return self.hosts[0][1] if self.hosts else self.globals

    @property
    def host_names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.hosts))

    def use(self) -> str | None:
        s = self.settings
        return s.get("use") or s.get("usev4") or s.get("usev6")

    def method(self) -> str | None:
        """The value of the setting ``use`` names: ``use=web, web=X`` gives X."""
        use = self.use()
        return self.settings.get(use) if use else None


def strip_comment(line: str) -> str:
    """The line up to a ``#`` that starts a word outside quotes (so ``password=a#b`` stays)."""
    quote = ""
    escape = False
    previous = " "
    for i, char in enumerate(line):
        if escape:
            escape = False
            char = "x"  # an escaped space separates nothing
        elif char == "\\":
            escape = True
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            return line[:i]
        previous = char
    return line


def logical_lines(text: str) -> list[str]:
    """Lines without comments, continuation lines joined, white space canonical."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = strip_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        line = " ".join(line.split())
        if line:
            out.append(line)
    if pending.strip():
        out.append(" ".join(pending.split()))
    return out


def parse_value(text: str) -> tuple[str, str]:
    """A value up to an unquoted space or comma: quotes and backslash escapes removed."""
    value: list[str] = []
    quote = ""
    escape = False
    for i, char in enumerate(text):
        if escape:
            value.append(char)
            escape = False
        elif char == "\\":
            escape = True
        elif quote:
            if char == quote:
                quote = ""
            else:
                value.append(char)
        elif char in "'\"":
            quote = char
        elif char.isspace() or char == ",":
            return "".join(value), text[i:]
        else:
            value.append(char)
    return "".join(value), ""


def parse_assignments(line: str) -> tuple[dict[str, str], str]:
    """Leading ``name=value`` settings, and the rest of the line (the hosts)."""
    settings: dict[str, str] = {}
    rest = line
    while True:
        match = _NAME.match(rest)
        if match is None:
            return settings, rest.strip()
        value, rest = parse_value(rest[match.end() :])
        settings[match.group(1).lower()] = value
        rest = rest.lstrip(", \t")


def parse_ddclient(text: str) -> DdclientConfig:
    config = DdclientConfig()
    for line in logical_lines(text):
        local, rest = parse_assignments(line)
        args = re.sub(r"\s*,\s*", ",", rest).split()
        hosts = [h for h in args[0].split(",") if h] if args else []
        hosts += [h for h in local.pop("host", "").split(",") if h]
        if not hosts:
            config.globals.update(local)
            continue
        settings = {**config.globals, **local}
        # The old way: "host login password" after the settings.
        if len(args) > 1:
            settings["login"] = args[1]
        if len(args) > 2:
            settings["password"] = args[2]
        config.hosts.extend((host, settings) for host in hosts)
    return config


def load(ctx: PluginContext) -> DdclientConfig | None:
    text = ctx.read_text(DDCLIENT_CONF)
    return None if text is None else parse_ddclient(text)


def _check(ctx: PluginContext) -> str | None:
    path = ctx.path(DDCLIENT_CONF)
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return f"ddclient is not configured (no {DDCLIENT_CONF})"
    except PermissionError:
        return f"cannot read {DDCLIENT_CONF}: permission denied"
    except OSError as exc:
        return f"cannot read {DDCLIENT_CONF}: {exc.strerror or exc}"


class Ddns:
    """ddclient's configuration, read in a thread and cached."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def config(self) -> DdclientConfig:
        return await self.ctx.cache.get("config", lambda: load(self.ctx)) or DdclientConfig()

    async def problem(self) -> str | None:
        """Why the configuration cannot be read, None when it can."""
        return await self.ctx.cache.get("status", lambda: _check(self.ctx))


# -- handlers ----------------------------------------------------------------------


async def legacy_ddns(service: Ddns, request: Request) -> JSONResponse:
    """RaspAP: ddclient's settings (the password for admin keys only)."""
    config = await service.config()
    s = config.settings
    return JSONResponse(
        {
            "use": config.use() or "",
            "method": config.method() or "",
            "protocol": s.get("protocol", ""),
            "server": s.get("server", ""),
            "login": s.get("login", ""),
            "password": s.get("password", "") if is_admin(request) else "",
            "domain": ",".join(config.host_names),
        }
    )


async def ddns(service: Ddns, request: Request) -> JSONResponse:
    """ddclient's settings and the hosts it updates.

    `password` is null unless the key is an admin key; `password_set`
    says whether one is configured.
    """
    config = await service.config()
    s = config.settings
    password = s.get("password")
    return JSONResponse(
        {
            "config_file": DDCLIENT_CONF,
            "use": config.use(),
            "method": config.method(),
            "protocol": s.get("protocol"),
            "server": s.get("server"),
            "login": s.get("login"),
            "password": password if is_admin(request) else None,
            "password_set": bool(password),
            "hosts": config.host_names,
        }
    )
