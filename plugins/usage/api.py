"""The usage plugin's HTTP handlers (Starlette); the work is in ``service.py``."""

from __future__ import annotations

import io
import math
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from raspapi.plugin import (
    Invalid,
    NotFound,
    note,
    parse_when,
    read_json,
    rfc3339,
)

from . import schema
from .service import DEFAULT, Usage, parse_mac

CSV_COLUMNS = (
    "mac",
    "hostname",
    "start_at",
    "rx_bytes",
    "tx_bytes",
    "total_bytes",
    "uploaded_bytes",
    "downloaded_bytes",
)


def _range(usage: Usage, request: Request, *, csv: bool = False) -> tuple[float, float, str, int]:
    now = usage.clock()
    raw_until, raw_since = schema.UNTIL.parse(request), schema.SINCE.parse(request)
    if (raw_until and len(raw_until) > 40) or (raw_since and len(raw_since) > 40):
        raise Invalid("since" if raw_since and len(raw_since) > 40 else "until", "too long")
    until = parse_when("until", raw_until, now) if raw_until else now
    since = parse_when("since", raw_since, now) if raw_since else until - 7 * 86400
    if since >= until:
        raise Invalid("since", "must be before until")
    step = schema.STEP.parse(request) or "day"
    if until - since > schema.MAX_RANGE[step]:
        days = schema.MAX_RANGE[step] // 86400
        raise Invalid("since", f"with step={step}, the range is at most {days} days")
    top = schema.TOP.parse(request) or schema.DEFAULT_TOP
    steps = math.ceil((until - since) / (3600 if step == "hour" else 86400)) + 1
    if not csv and top * steps > schema.MAX_POINTS:
        raise Invalid(
            "top",
            f"{top} devices x {steps} steps is more than {schema.MAX_POINTS} points: "
            "ask for fewer devices, a shorter range, or GET /api/v1/usage.csv",
        )
    return since, until, step, top


async def report(usage: Usage, request: Request) -> JSONResponse:
    """Bytes per device: the devices with the most traffic, with totals per step.

    `rx_bytes` and `tx_bytes` are as the access point counts them:
    `rx_bytes` is what the device uploaded (also `uploaded_bytes`),
    `tx_bytes` what it downloaded (`downloaded_bytes`). Days are the
    access point's local calendar days. `since`/`until` take RFC 3339,
    Unix seconds, `now` or a time before now such as `-7d`.
    """
    since, until, step, top = _range(usage, request)
    devices = await usage.report(since, until, step, top)
    return JSONResponse(
        {
            "since_at": rfc3339(since),
            "until_at": rfc3339(until),
            "step": step,
            "devices": devices,
        }
    )


async def device(usage: Usage, request: Request) -> JSONResponse:
    """One device's bytes over time (404 when it has none in the range)."""
    mac = parse_mac(request.path_params["mac"])
    since, until, step, _ = _range(usage, request)
    devices = await usage.report(since, until, step, 1, mac)
    if not devices:
        raise NotFound(f"no traffic of {mac} in that range", code="no_usage")
    return JSONResponse(
        {
            "since_at": rfc3339(since),
            "until_at": rfc3339(until),
            "step": step,
            "device": devices[0],
        }
    )


async def report_csv(usage: Usage, request: Request) -> StreamingResponse:
    """The same as `GET /api/v1/usage`, as CSV: one row per device and step, streamed."""
    since, until, step, top = _range(usage, request, csv=True)
    ranked = await usage.report(since, until, step, top, with_steps=False)
    return StreamingResponse(
        _csv_rows(usage, ranked, since, until, step),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
    )


async def list_quotas(usage: Usage, request: Request) -> JSONResponse:
    """Every quota, and every device under one this period: used, limit, state."""
    now = usage.clock()
    quotas = sorted(usage.quotas.values(), key=lambda q: (q.target != DEFAULT, q.target))
    return JSONResponse(
        {
            "quotas": [usage.quota_view(q, now) for q in quotas],
            "devices": await usage.quota_states(now),
        }
    )


async def put_quota(usage: Usage, request: Request) -> JSONResponse:
    """Set the quota of a device (a MAC), or `default` for every device without one.

    `{"daily_bytes": N}` resets at local midnight; `{"monthly_bytes": N,
    "resets_on_day": D}` on day D of each month (its last day when shorter).
    `"action": "block"` (default) deauthenticates and denies the device
    until the period resets; `"notify"` only sends `usage.quota_exceeded`.
    Enforced every sampler interval (`RASPAPI_HISTORY_INTERVAL`).
    """
    target = _target(request.path_params["target"])
    quota = schema.parse_quota(await read_json(request), target, usage.clock())
    await usage.set_quota(quota)
    note(request, f"usage quota of {target}: {quota.limit} bytes, {quota.action}")
    return JSONResponse(usage.quota_view(quota, usage.clock()))


async def delete_quota(usage: Usage, request: Request) -> JSONResponse:
    """Remove a quota; a device it blocked is allowed again at once."""
    target = _target(request.path_params["target"])
    await usage.delete_quota(target)
    note(request, f"usage quota of {target} removed")
    return JSONResponse({"deleted": target})


def _target(raw: str) -> str:
    return DEFAULT if raw == DEFAULT else parse_mac(raw)


async def _csv_rows(
    usage: Usage, ranked: list[dict[str, Any]], since: float, until: float, step: str
) -> AsyncIterator[bytes]:
    # One device at a time: memory holds one device's steps, not all.
    yield _csv_line(CSV_COLUMNS)
    for item in ranked:
        found = await usage.report(since, until, step, 1, item["mac"])
        if not found:
            continue
        device = found[0]
        for point in device["steps"]:
            yield _csv_line(
                [device["mac"], _cell(device["hostname"] or "")]
                + [point[c] for c in CSV_COLUMNS[2:]]
            )


def _cell(text: str) -> str:
    """A spreadsheet must not read a host name as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _csv_line(values: Any) -> bytes:
    import csv  # only the CSV route needs it (issue 16: memory)

    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()
