"""The OpenAPI 3.1 document, generated from the routing table."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from raspapi import __version__
from raspapi.http.routing import ApiRoute

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "code": {"type": "string", "description": "What went wrong, for a program."},
        "field": {"type": "string", "description": "The input field at fault (422)."},
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    # The name RaspAP's FastAPI gives it, so its clients' tooling keeps working.
    "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "access_token"},
    "XAPIKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer"},
}

_ERRORS = {
    "401": "No key, or a key that is not valid (RaspAP routes answer 403).",
    "403": "The key lacks the scope this route needs.",
    "422": "Bad input; `field` names it.",
    "503": "The plugin is unavailable or failed, the route is turned off "
    "(RASPAPI_DISABLE_ROUTES), or too many requests or streams are in flight; "
    "`detail` says why.",
    "400": "The body is not JSON (or nested too deeply, or not UTF-8), or the client left.",
    "404": "Nothing has this id or name.",
    "409": "The change conflicts with the current state (a name taken, a limit reached).",
    "413": "The body is larger than the route takes.",
    "502": "A program or service the change needs failed; `detail` says how.",
    "429": "Too many requests (rate limit, code `rate_limited`); `Retry-After` says when to retry.",
}


def build(routes: Iterable[ApiRoute], *, description: str = "") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    for route in routes:
        if not route.include_in_schema:
            continue
        path = _PARAM.sub(r"{\1}", route.path) or "/"
        tag = "RaspAP compatible" if route.legacy else (route.plugin or "core")
        tags.setdefault(tag, None)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(route, method, tag)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "raspapi",
            "version": __version__,
            "description": description,
        },
        "paths": paths,
        "tags": [{"name": t} for t in tags],
        "components": {
            "schemas": {"Error": ERROR_SCHEMA},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def _operation(route: ApiRoute, method: str, tag: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [tag],
        "summary": route.summary,
        "operationId": f"{method.lower()}_{route.plugin or 'core'}_{route.name}".replace(".", "_"),
    }
    if route.description:
        op["description"] = route.description
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    params += [
        {
            "name": q.name,
            "in": "query",
            "required": False,
            "description": q.description,
            "schema": q.schema(),
        }
        for q in route.query
    ]
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body}},
        }
    ok: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        ok["content"] = {
            media: {"schema": route.response if media == "application/json" else {}}
            for media in route.media_types
        }
        if route.media_types != ("application/json",) and "application/json" not in ok["content"]:
            # The schema describes what the text carries (an SSE snapshot, CSV columns).
            first = route.media_types[0]
            ok["content"][first] = {"schema": route.response}
    elif route.media_types != ("application/json",):
        ok["content"] = {media: {"schema": {}} for media in route.media_types}
    responses: dict[str, Any] = {str(route.status_code): ok}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if route.scope is not None:
        op["security"] = [{"APIKeyHeader": []}, {"XAPIKey": []}, {"Bearer": []}]
        if route.legacy:
            responses["403"] = {"description": "Missing or wrong key.", **error}
        else:
            responses["401"] = {"description": _ERRORS["401"], **error}
            responses["403"] = {"description": _ERRORS["403"], **error}
    if route.query or route.body is not None or "{" in route.path:
        responses["422"] = {"description": _ERRORS["422"], **error}
    if "{" in route.path or route.query:
        responses["404"] = {"description": _ERRORS["404"], **error}
    if route.scope is None and method in ("POST", "PUT", "PATCH", "DELETE"):
        # timeseries-api's writes take their key as a token in the body.
        responses["403"] = {
            "description": "The token is missing, wrong or lacks the scope.",
            **error,
        }
    if route.body is not None or method in ("POST", "PUT", "PATCH", "DELETE"):
        responses["400"] = {"description": _ERRORS["400"], **error}
        responses["413"] = {"description": _ERRORS["413"], **error}
    if method != "GET" and route.scope in ("control", "admin", "ingest"):
        responses["409"] = {"description": _ERRORS["409"], **error}
        responses["502"] = {"description": _ERRORS["502"], **error}
    # Any route can be turned off (RASPAPI_DISABLE_ROUTES), and uvicorn answers
    # 503 past its concurrency limit.
    responses["503"] = {"description": _ERRORS["503"], **error}
    responses["429"] = {"description": _ERRORS["429"], **error}
    op["responses"] = responses
    return op
