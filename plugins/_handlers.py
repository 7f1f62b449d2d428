"""Thin handlers bound to a plugin's service, shared by the built-in plugins.

A module whose name starts with ``_`` is not loaded as a plugin: it is a
private helper of the built-in plugins.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

S = TypeVar("S")
R = TypeVar("R", bound=Response)


def bind(
    handler: Callable[[S, Request], Awaitable[R]], service: S
) -> Callable[[Request], Awaitable[R]]:
    """``handler(service, request)`` as a Starlette endpoint.

    The endpoint keeps the handler's name and docstring: the route's name and
    its OpenAPI summary and description come from them.
    """

    @functools.wraps(handler)
    async def endpoint(request: Request) -> R:
        return await handler(service, request)

    return endpoint


def bind_lazy(
    handler: Callable[[S, Request], Awaitable[R]], service: Callable[[], S]
) -> Callable[[Request], Awaitable[R]]:
    """As :func:`bind`, with the service made by ``service()`` when a request
    comes: a plugin whose service module is heavy to import imports it on its
    first request, not at start."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> R:
        return await handler(service(), request)

    return endpoint
