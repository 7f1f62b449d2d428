"""DNS: RaspAP's ad-block lists, dnsmasq's upstream servers and its log.

The ad-block lists reach hundreds of thousands of lines. Each is parsed once
per change of the file (its mtime, size and inode) into a ready JSON body and
the offsets of its items, so RaspAP's routes send bytes that already exist and
``/api/v1/dns/domains`` pages without copying the list. The log is read from
its end, a bounded number of bytes.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from raspapi.plugin import ApiRoute, PluginContext, Status, hookimpl

from .._dnsmasq import DNSMASQ_CONF, DNSMASQ_DIR
from .._handlers import bind_lazy
from . import api, schema

if TYPE_CHECKING:
    from .service import Dns


def _dns(ctx: PluginContext) -> Dns:
    # The service module is imported on first use (a request, or the self-check
    # after start), not while the daemon starts.
    from .service import Dns

    return ctx.service(Dns)


_GET = ["GET"]


@hookimpl
def raspapi_legacy_routes(ctx: PluginContext) -> list[ApiRoute]:
    dns = functools.partial(_dns, ctx)
    return [
        ApiRoute(
            "/dns/domains",
            bind_lazy(api.legacy_domains, dns),
            methods=_GET,
            response=schema.LEGACY_DOMAINS,
        ),
        ApiRoute(
            "/dns/hostnames",
            bind_lazy(api.legacy_hostnames, dns),
            methods=_GET,
            response=schema.LEGACY_HOSTNAMES,
        ),
        ApiRoute(
            "/dns/upstream",
            bind_lazy(api.legacy_upstream, dns),
            methods=_GET,
            response=schema.LEGACY_UPSTREAM,
        ),
        ApiRoute(
            "/dns/logs",
            bind_lazy(api.legacy_logs, dns),
            methods=_GET,
            query=[schema.LOG_LIMIT],
            response=schema.LEGACY_LOGS,
        ),
    ]


@hookimpl
def raspapi_routes(ctx: PluginContext) -> list[ApiRoute]:
    dns = functools.partial(_dns, ctx)
    paged = [schema.OFFSET, schema.LIMIT]
    return [
        ApiRoute(
            "/",
            bind_lazy(api.summary, dns),
            methods=_GET,
            query=[schema.SUMMARY_LOG_LIMIT],
            response=schema.SUMMARY,
        ),
        ApiRoute(
            "/domains",
            bind_lazy(api.domains, dns),
            methods=_GET,
            query=paged,
            response=schema.page_schema("domains"),
        ),
        ApiRoute(
            "/hostnames",
            bind_lazy(api.hostnames, dns),
            methods=_GET,
            query=paged,
            response=schema.page_schema("hostnames"),
        ),
        ApiRoute(
            "/logs",
            bind_lazy(api.logs, dns),
            methods=_GET,
            query=[schema.LOG_LIMIT],
            response=schema.LOGS,
        ),
    ]


@hookimpl
async def raspapi_status(ctx: PluginContext) -> Status:
    files = await _dns(ctx).files()
    if not files:
        return Status.unavailable(
            f"no dnsmasq configuration ({DNSMASQ_CONF} or {DNSMASQ_DIR}/*.conf)"
        )
    return Status.ok(config_files=len(files))
