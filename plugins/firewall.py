"""Firewall: RaspAP's iptables rules file, served as it is.

``GET /firewall`` answers the JSON of
``/etc/raspap/networking/firewall/iptables_rules.json``. When the file is
absent it answers a JSON 404; when it is not valid JSON (or unreadable, or
larger than 4 MiB) a JSON 503 with code ``invalid_config`` and the reason, never
a 500. ``/api/v1/firewall`` gives the same rules with the file's details; the
plugin is unavailable (503) while the file is absent or invalid.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response

from raspapi.plugin import (
    ApiRoute,
    NotFound,
    PluginContext,
    Status,
    Unavailable,
    hookimpl,
    rfc3339,
)

from ._handlers import bind

# -- hooks -------------------------------------------------------------------


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    fw = ctx.service(Firewall)
    return [ApiRoute("/firewall", bind(legacy_firewall, fw), methods=["GET"], response=RAW)]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    fw = ctx.service(Firewall)
    return [ApiRoute("/", bind(firewall, fw), methods=["GET"], response=DETAILED)]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    rules = await ctx.service(Firewall).rules()
    if rules.state != "ok":
        return Status.unavailable(rules.problem or rules.state)
    return Status.ok()


# -- schemas -----------------------------------------------------------------

RULES_FILE = "/etc/raspap/networking/firewall/iptables_rules.json"
MAX_BYTES = 4 * 1024 * 1024

State = Literal["ok", "absent", "invalid"]


RAW: dict[str, Any] = {"type": "object", "description": "iptables_rules.json as it is"}
DETAILED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rules_file": {"type": "string"},
        "modified_at": {"type": ["string", "null"], "format": "date-time"},
        "size_bytes": {"type": "integer"},
        "rules": {"type": "object", "description": "iptables_rules.json as it is"},
    },
}


# -- service -----------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    state: State
    problem: str | None = None
    data: Any = None
    #: ``data`` as compact JSON, ready to send.
    body: bytes = b""
    modified_at: float | None = None
    size: int = 0


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load(ctx: PluginContext) -> Rules:
    path = ctx.path(RULES_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return Rules("absent", f"{RULES_FILE} does not exist (RaspAP's firewall is not set up)")
    except OSError as exc:
        return Rules("invalid", f"cannot read {RULES_FILE}: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Rules("invalid", f"{RULES_FILE} is not a regular file")
        raw = os.read(fd, MAX_BYTES + 1)
    except OSError as exc:
        return Rules("invalid", f"cannot read {RULES_FILE}: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        return Rules("invalid", f"{RULES_FILE} is larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        return Rules("invalid", f"{RULES_FILE} is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return Rules(
            "invalid",
            f"{RULES_FILE} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        )
    except (ValueError, RecursionError) as exc:
        return Rules("invalid", f"{RULES_FILE} is not valid JSON: {exc}")
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Rules("ok", None, data, body, st.st_mtime, st.st_size)


class Firewall:
    """The rules file, read in a thread and cached."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def rules(self) -> Rules:
        return await self.ctx.cache.get("rules", lambda: load(self.ctx))

    async def checked(self) -> Rules:
        """The rules; NotFound while the file is absent, Unavailable while invalid."""
        rules = await self.rules()
        _raise_unless_ok(rules)
        return rules


def _raise_unless_ok(rules: Rules) -> None:
    if rules.state == "absent":
        raise NotFound(f"no firewall rules: {rules.problem}", code="rules_not_found")
    if rules.state == "invalid":
        raise Unavailable(rules.problem or "invalid rules", code="invalid_config")


# -- handlers ----------------------------------------------------------------


async def legacy_firewall(fw: Firewall, request: Request) -> Response:
    """RaspAP: the firewall rules file (JSON 404 when absent)."""
    rules = await fw.checked()
    return Response(rules.body, media_type="application/json")


async def firewall(fw: Firewall, request: Request) -> Response:
    """RaspAP's firewall rules, with the file they come from."""
    rules = await fw.checked()
    modified = rfc3339(rules.modified_at or 0, lenient=True)
    head = json.dumps(
        {"rules_file": RULES_FILE, "modified_at": modified, "size_bytes": rules.size},
        separators=(",", ":"),
    ).encode()
    # The rules are already encoded: splice them in rather than encode them again.
    return Response(head[:-1] + b',"rules":' + rules.body + b"}", media_type="application/json")
