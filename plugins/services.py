"""State and control of an allow-list of systemd units.

hostapd, dnsmasq, the OpenVPN client (``openvpn-client@client``, RaspAP's unit),
``wg-quick@<interface>`` and this daemon (``restapi``). Any other name is a
404: this is not a general systemctl over HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from raspapi.plugin import (
    Action,
    ApiError,
    ApiRoute,
    CommandError,
    CommandFailed,
    CommandNotFound,
    CommandTimeout,
    Conflict,
    NotFound,
    PluginContext,
    Status,
    Systemd,
    Unavailable,
    UnitState,
    describe_failure,
    hookimpl,
)

from ._handlers import bind


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    service = ctx.service(Services)
    routes = [
        ApiRoute("/", bind(overview, service), response=LIST_SCHEMA),
        ApiRoute("/{name}", bind(one, service), response=SERVICE_SCHEMA),
    ]
    for action, handler in zip(ACTIONS, (start, stop, restart), strict=True):
        routes.append(
            ApiRoute(
                f"/{{name}}/{action}",
                bind(handler, service),
                methods=["POST"],
                scope="control",
                response=ACTION_SCHEMA,
            )
        )
    return routes


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    service = ctx.service(Services)
    status: Status = await ctx.cache.get("status", service.system_state, ttl=10)
    return status


# -- schemas and constants -------------------------------------------------------

#: Name in our URLs -> unit.
FIXED = {
    "hostapd": "hostapd.service",
    "dnsmasq": "dnsmasq.service",
    "openvpn-client@client": "openvpn-client@client.service",
    "restapi": "restapi.service",
}
SELF = "restapi.service"
#: wg-quick's own rule for an interface (config file) name.
_WG = re.compile(r"wg-quick@([A-Za-z0-9_=+.-]{1,15})")
#: Listed by GET /: RaspAP runs WireGuard as wg-quick@wg0 (wg0.conf links to
#: the active profile); other wg-quick@<interface> units are served by name.
LISTED = (*FIXED.values(), "wg-quick@wg0.service")
ACTIONS: tuple[Action, ...] = ("start", "stop", "restart")
#: What ``systemctl is-system-running`` says when systemd is not PID 1.
_NO_SYSTEMD = ("offline", "unknown", "")


_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
SERVICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "unit": _STRING,
        "active": {"type": ["boolean", "null"]},
        "load_state": _NULLABLE_STRING,
        "active_state": _NULLABLE_STRING,
        "sub_state": _NULLABLE_STRING,
        "unit_file_state": _NULLABLE_STRING,
        "main_pid": {"type": ["integer", "null"]},
        "active_since": {**_NULLABLE_STRING, "description": "as systemctl prints it"},
        "memory_bytes": {"type": ["integer", "null"]},
        "error": {**_NULLABLE_STRING, "description": "why systemctl could not say"},
    },
}
LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"services": {"type": "array", "items": SERVICE_SCHEMA}},
}
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _STRING,
        "unit": _STRING,
        "action": {"enum": list(ACTIONS)},
        "result": {"enum": ["done", "queued"], "description": "queued: restapi itself"},
        "service": {**SERVICE_SCHEMA, "type": ["object", "null"]},
    },
}


# -- the service -----------------------------------------------------------------


def unit_for(name: str) -> str | None:
    """The allowed unit a URL name means (``hostapd``, ``wg-quick@wg0.service``...)."""
    if len(name) > 64:
        return None
    base = name.removesuffix(".service")
    if base in FIXED:
        return FIXED[base]
    match = _WG.fullmatch(base)
    if match and match.group(1) not in (".", ".."):
        return f"{base}.service"
    return None


def _short(unit: str) -> str:
    return unit.removesuffix(".service")


def _entry(unit: str, state: UnitState | None, error: str | None) -> dict[str, Any]:
    fields = (
        state.as_dict()
        if state is not None
        else {k: None for k in UnitState._fields if k != "unit"}
    )
    fields.pop("unit", None)
    return {
        "name": _short(unit),
        "unit": unit,
        "active": state.active if state is not None else None,
        **fields,
        "error": error,
    }


def _failure(exc: CommandError, what: str) -> ApiError:
    if isinstance(exc, CommandNotFound):
        return Unavailable(f"{what}: systemctl is not installed", code="systemd_unavailable")
    if isinstance(exc, CommandTimeout):
        return ApiError(f"{what}: {exc}", code="timeout", status_code=504)
    return ApiError(f"{what}: {describe_failure(exc)}", code="action_failed", status_code=502)


class Services:
    """systemctl over the allow-list: states (cached for the listed units) and actions."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.systemd = Systemd(ctx.runner)

    async def state(self, unit: str) -> UnitState:
        if unit not in LISTED:
            # Any wg-quick@<name> may be asked for: don't let callers grow the cache.
            return await self.systemd.state(unit)
        state: UnitState = await self.ctx.cache.get(
            ("state", unit), functools.partial(self.systemd.state, unit)
        )
        return state

    async def entry(self, unit: str) -> dict[str, Any]:
        try:
            return _entry(unit, await self.state(unit), None)
        except CommandError as exc:
            return _entry(unit, None, describe_failure(exc))

    async def overview(self) -> dict[str, Any]:
        entries = await asyncio.gather(*(self.entry(u) for u in LISTED))
        return {"services": list(entries)}

    async def one(self, unit: str) -> dict[str, Any]:
        try:
            state = await self.state(unit)
        except CommandError as exc:
            raise _failure(exc, f"cannot read the state of {unit}") from None
        return _entry(unit, state, None)

    async def act(self, unit: str, action: Action) -> dict[str, Any]:
        """Run ``action`` on ``unit``; ``result`` is "queued" for this daemon itself."""
        if unit == SELF and action == "stop":
            # Nothing remote could start it again: stopping this daemon is for a
            # shell on the machine (or RaspAP's GUI, which runs systemctl itself).
            raise Conflict(
                f"{unit} is this API: stopping it remotely would leave nothing to start it "
                "again; restart it, or stop it on the machine with systemctl",
                code="self_stop_refused",
            )
        what = f"systemctl {action} {unit} failed"
        self.ctx.logger.info("%s %s requested", action, unit)
        try:
            if unit == SELF:
                # Queue the job and answer: uvicorn finishes requests in flight
                # when systemd stops us. systemctl runs in our cgroup, so the
                # job it queued may SIGTERM it before it exits: that is the
                # job running, not a failure.
                try:
                    await self.ctx.runner.run(
                        ["systemctl", action, "--no-block", "--no-ask-password", "--", unit],
                        timeout=self.systemd.timeout,
                    )
                except CommandFailed as exc:
                    if exc.returncode != -signal.SIGTERM:
                        raise
            else:
                await self.systemd.act(action, unit)
        except CommandError as exc:
            raise _failure(exc, what) from None
        finally:
            self.ctx.cache.invalidate(("state", unit))
        if unit == SELF:
            body = {"name": _short(unit), "unit": unit, "action": action, "result": "queued"}
            return {**body, "service": None}
        service = await self.entry(unit)
        body = {"name": _short(unit), "unit": unit, "action": action, "result": "done"}
        return {**body, "service": service}

    async def system_state(self) -> Status:
        """Whether systemd runs as PID 1, as ``systemctl is-system-running`` says."""
        try:
            result = await self.ctx.runner.run(
                ["systemctl", "is-system-running"], timeout=10, check=False
            )
        except CommandNotFound:
            return Status.unavailable("systemctl is not installed")
        except CommandError as exc:
            return Status.unavailable(f"systemctl cannot answer: {exc}")
        lines = result.text.strip().splitlines()
        state = lines[0].strip() if lines else ""
        if state in _NO_SYSTEMD:
            return Status.unavailable(
                "systemd is not running as init "
                f"(systemctl is-system-running: {state or 'no answer'})"
            )
        return Status.ok(system_state=state)


# -- the handlers ----------------------------------------------------------------


def _unit(request: Request) -> str:
    name: str = request.path_params["name"]
    unit = unit_for(name)
    if unit is None:
        shown = name if len(name) <= 64 else name[:64] + "..."
        raise NotFound(
            f"{shown!r} is not a service this API manages; it manages "
            "hostapd, dnsmasq, openvpn-client@client, wg-quick@<interface> and restapi",
            code="unknown_service",
        )
    return unit


async def overview(service: Services, request: Request) -> JSONResponse:
    """The state of every service this API manages.

    hostapd, dnsmasq, openvpn-client@client, restapi and wg-quick@wg0
    (RaspAP's WireGuard unit; ask for other wg-quick@<interface> units by
    name). A unit systemctl could not read has ``error`` set and null states.
    """
    return JSONResponse(await service.overview())


async def one(service: Services, request: Request) -> JSONResponse:
    """The state of one service (hostapd, dnsmasq, wg-quick@wg0...)."""
    return JSONResponse(await service.one(_unit(request)))


async def _act(service: Services, request: Request, action: Action) -> JSONResponse:
    body = await service.act(_unit(request), action)
    return JSONResponse(body, status_code=202 if body["result"] == "queued" else 200)


async def start(service: Services, request: Request) -> JSONResponse:
    """Start a service; answers with its state afterwards."""
    return await _act(service, request, "start")


async def stop(service: Services, request: Request) -> JSONResponse:
    """Stop a service; answers with its state afterwards."""
    return await _act(service, request, "stop")


async def restart(service: Services, request: Request) -> JSONResponse:
    """Restart a service; answers with its state afterwards.

    ``restapi`` (this daemon) answers 202 first: the job is queued with
    ``systemctl --no-block`` and runs after the reply.
    """
    return await _act(service, request, "restart")
