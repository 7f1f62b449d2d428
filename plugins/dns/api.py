"""The dns plugin's handlers: thin, the service does the work."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .schema import LIMIT, LOG_DEFAULT, LOG_FILE, LOG_LIMIT, OFFSET, SUMMARY_LOG_LIMIT

if TYPE_CHECKING:
    from .service import Dns


async def _list_body(service: Dns, request: Request, key: str) -> Response:
    blocks = await service.block_list(key)
    headers = {"ETag": blocks.etag} if blocks.etag else {}
    if blocks.etag and request.headers.get("if-none-match") == blocks.etag:
        return Response(status_code=304, headers=headers)
    return Response(blocks.body, media_type="application/json", headers=headers)


async def legacy_domains(service: Dns, request: Request) -> Response:
    """RaspAP: the domains of the ad-block list."""
    return await _list_body(service, request, "domains")


async def legacy_hostnames(service: Dns, request: Request) -> Response:
    """RaspAP: the host names of the ad-block hosts list."""
    return await _list_body(service, request, "hostnames")


async def legacy_upstream(service: Dns, request: Request) -> Response:
    """RaspAP: dnsmasq's upstream name servers, one per line."""
    servers = await service.upstream()
    return JSONResponse({"upstream_nameserver": "\n".join(servers)})


async def legacy_logs(service: Dns, request: Request) -> Response:
    """RaspAP: the last lines of dnsmasq's log (default 500)."""
    limit = LOG_LIMIT.parse(request) or LOG_DEFAULT
    entries = await service.log_tail(limit)
    return JSONResponse([entry.legacy() for entry in entries])


async def summary(service: Dns, request: Request) -> Response:
    """Ad-block state and list sizes, upstream servers and the log's last lines."""
    log_limit = SUMMARY_LOG_LIMIT.parse(request) or 0
    return JSONResponse(await service.summary(log_limit))


async def _page(service: Dns, request: Request, key: str) -> Response:
    offset = OFFSET.parse(request) or 0
    limit = LIMIT.parse(request) or 1000
    return Response(await service.page(key, offset, limit), media_type="application/json")


async def domains(service: Dns, request: Request) -> Response:
    """One page of the ad-block domains."""
    return await _page(service, request, "domains")


async def hostnames(service: Dns, request: Request) -> Response:
    """One page of the ad-block host names."""
    return await _page(service, request, "hostnames")


async def logs(service: Dns, request: Request) -> Response:
    """The last lines of dnsmasq's log, parsed (malformed lines left out)."""
    limit = LOG_LIMIT.parse(request) or LOG_DEFAULT
    entries = await service.log_tail(limit)
    return JSONResponse({"log_file": LOG_FILE, "entries": [e.api() for e in entries]})
