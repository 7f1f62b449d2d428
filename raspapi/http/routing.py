"""Routes plugins contribute, with what the core needs to guard and document them."""

from __future__ import annotations

import builtins
import copy
import inspect
import json
import math
import re
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from starlette.convertors import Convertor
from starlette.requests import ClientDisconnect, Request
from starlette.routing import BaseRoute, Match, Route, Router, compile_path
from starlette.types import Message, Receive, Scope, Send

from raspapi.http.errors import BadRequest, Invalid

#: Scopes a key can carry; ``None`` on a route means "no key needed".
SCOPES = ("read", "control", "admin", "ingest")

T = TypeVar("T", int, float, str, bool)

#: The range of every integer taken from a path, a query or a body: SQLite's INTEGER.
INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def parse_int(value: object, *, low: int = INT_MIN, high: int = INT_MAX) -> int | None:
    """``value`` as an int when it is one in ``low..high``, else None.

    The one parser of integers from user input (paths, queries, form fields and
    JSON bodies): a JSON integer (not a bool), or a string of ASCII digits with an
    optional leading ``-``. ``str.isdigit()`` and ``int()`` also take ``²``, Arabic-Indic digits,
    ``1_000`` and spaces, and Python ints have no bound; neither gets past here.
    """
    if type(value) is int:
        number = value
    elif isinstance(value, str) and _INTEGER.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if low <= number <= high else None


class Query(Generic[T]):
    """A documented, validated query parameter. ``LIMIT.parse(request)``.

    Read-only once made. A plain class rather than a frozen dataclass, which
    compiles its methods at every start (about 6 ms of an arm64 start)."""

    # In the constructor's order: __init__ fills them by position.
    __slots__ = ("name", "type", "default", "description", "minimum", "maximum", "choices")  # noqa: RUF023
    name: str
    type: builtins.type[T]
    default: T | None
    description: str
    minimum: float | None
    maximum: float | None
    choices: tuple[str, ...] | None

    def __init__(
        self,
        name: str,
        type: builtins.type[T],
        default: T | None = None,
        description: str = "",
        minimum: float | None = None,
        maximum: float | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> None:
        fields = (name, type, default, description, minimum, maximum, choices)
        for slot, value in zip(self.__slots__, fields, strict=True):
            object.__setattr__(self, slot, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Query is read-only: cannot set {name!r}")

    def __repr__(self) -> str:
        return f"Query({self.name!r}, {self.type.__name__})"

    def parse(self, request: Request) -> T | None:
        raw = request.query_params.get(self.name)
        if raw is None or raw == "":
            return self.default
        value: Any
        try:
            if self.type is bool:
                lowered = raw.lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError
                value = lowered in ("1", "true", "yes")
            elif self.type is int:
                value = parse_int(raw)
                if value is None:
                    raise ValueError
            else:
                value = self.type(raw)
        except ValueError:
            raise Invalid(self.name, f"expected {self.type.__name__}, got {raw!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(self.name, "must be a finite number")
        if self.minimum is not None and value < self.minimum:
            raise Invalid(self.name, f"must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise Invalid(self.name, f"must be at most {self.maximum:g}")
        if self.choices is not None and value not in self.choices:
            raise Invalid(self.name, f"must be one of {', '.join(self.choices)}")
        return value  # type: ignore[no-any-return]

    def schema(self) -> dict[str, Any]:
        names = {int: "integer", float: "number", str: "string", bool: "boolean"}
        schema: dict[str, Any] = {"type": names[self.type]}
        if self.default is not None:
            schema["default"] = self.default
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices is not None:
            schema["enum"] = list(self.choices)
        return schema


#: The path Starlette's constructor compiles in place of the route's own (its regex
#: is in ``re``'s cache after the first route, so the constructor costs no compile).
_UNCOMPILED = "/"
_COMPILED = ("_compiled", "path_regex", "path_format", "param_convertors")


class ApiRoute(Route):
    """A Starlette route plus its scope, summary and response schema.

    ``scope`` is the key scope needed (``None``: open to all). A route of an
    unavailable plugin answers 503, unless it is marked ``when_unavailable``. ``body`` is the
    JSON schema of the request body and ``response`` of a 200 answer; both go
    into ``/openapi.json``.

    The path's regex is compiled on first use, not at start: compiling cost about
    80 µs a route on x86 (``re`` compiles in Python), twice for each of about 200
    routes (declared, then relocated under ``/api/v1`` and RaspAP's root), and
    ten times that under emulation or on a Pi core. :class:`IndexedRouter` finds
    routes without parameters by path, so most never compile a regex at all
    until a request scans past them.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        methods: Sequence[str] | None = None,
        name: str | None = None,
        scope: str | None = "read",
        summary: str | None = None,
        response: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        query: Sequence[Query[Any]] = (),
        status_code: int = 200,
        include_in_schema: bool = True,
        when_unavailable: bool = False,
        media_types: Sequence[str] = ("application/json",),
    ) -> None:
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
        if not path.startswith("/"):
            raise ValueError(f"routed paths must start with '/': {path!r}")
        super().__init__(
            _UNCOMPILED, endpoint, methods=methods, name=name, include_in_schema=include_in_schema
        )
        self.path = path
        self._forget_compiled()
        self.scope = scope
        # cleandoc: a method's and a function's docstring read the same.
        doc = inspect.cleandoc(endpoint.__doc__ or "")
        self.summary = summary or (doc.splitlines()[0] if doc else self.name)
        self.description = "\n".join(doc.splitlines()[1:]).strip() if doc else ""
        self.response = response
        self.body = body
        self.query = tuple(query)
        self.status_code = status_code
        #: Served even while the plugin is unavailable: the route that repairs it
        #: (restart a stopped service, fix its configuration) must still answer.
        self.when_unavailable = when_unavailable
        #: Content types a 2xx answer can have (the OpenAPI document lists them).
        self.media_types = tuple(media_types)
        #: Filled in by the core: the plugin that owns the route, and whether
        #: it is one of RaspAP's root paths.
        self.plugin: str = ""
        self.legacy = False

    def relocated(self, path: str, plugin: str, *, legacy: bool) -> ApiRoute:
        """This route at ``path``, owned by ``plugin``.

        A copy with only the path compiled anew: building the route again
        (the endpoint's wrapper, its inspection) cost about a third of a
        millisecond per route at start on a Pi, for 190 routes."""
        if not path.startswith("/"):
            raise ValueError(f"routed paths must start with '/': {path!r}")
        route = copy.copy(self)
        route.path = path
        route._forget_compiled()
        route.methods = None if self.methods is None else set(self.methods)
        route.plugin = plugin
        route.legacy = legacy
        return route

    def _forget_compiled(self) -> None:
        for name in _COMPILED:
            self.__dict__.pop(name, None)

    @cached_property
    def _compiled(self) -> tuple[re.Pattern[str], str, dict[str, Convertor[Any]]]:
        return compile_path(self.path)

    @cached_property
    def path_regex(self) -> re.Pattern[str]:  # type: ignore[override]
        return self._compiled[0]

    @cached_property
    def path_format(self) -> str:  # type: ignore[override]
        return self._compiled[1]

    @cached_property
    def param_convertors(self) -> dict[str, Convertor[Any]]:  # type: ignore[override]
        return self._compiled[2]

    @property
    def has_parameters(self) -> bool:
        """Whether the path has ``{parameters}`` (without compiling it)."""
        return "{" in self.path

    @classmethod
    def from_route(cls, route: Route) -> ApiRoute:
        if isinstance(route, ApiRoute):
            return route
        return cls(
            route.path,
            route.endpoint,
            methods=sorted(route.methods - {"HEAD"}) if route.methods else None,
            name=route.name,
            include_in_schema=route.include_in_schema,
        )


class ClientGone(BadRequest):
    """The client hung up before its body arrived: nobody reads the answer, and it
    is neither the server's fault nor an error worth more than a debug line."""

    status_code = 400
    code = "client_disconnected"


async def read_json(request: Request, *, max_bytes: int = 64 * 1024) -> Any:
    """The request's JSON body, or a 4xx naming what is wrong with it.

    Every route reads its JSON body here: the size is capped (413), the text must
    be UTF-8 JSON without NaN or Infinity, nesting deeper than the parser's stack
    is a 400 (not a RecursionError), and a client that hangs up mid-body raises
    :class:`ClientGone`."""
    length = request.headers.get("content-length")
    declared = parse_int(length, low=0) if length is not None else None
    if length is not None and (declared is None or declared > max_bytes):
        raise BadRequest(
            f"body larger than {max_bytes} bytes", code="body_too_large", status_code=413
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise BadRequest(
                    f"body larger than {max_bytes} bytes", code="body_too_large", status_code=413
                )
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone("the client disconnected before sending its body") from None
    raw = b"".join(chunks)
    if not raw.strip():
        raise BadRequest("a JSON body is required", code="body_missing")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise BadRequest("body is nested too deeply", code="body_invalid") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", code="body_invalid") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


class IndexedRouter(Router):
    """A Starlette router that finds routes without path parameters by dictionary.

    Starlette tries each route's regex in turn; with every plugin loaded that is
    dozens of matches per request, a large share of a cached answer's cost. Paths
    without parameters (``/system``, ``/api/v1/thermal``) are looked up directly;
    everything else (parameters, mounts, 405s, slash redirects) goes the usual way.
    """

    _index: dict[str, list[Route]] | None = None
    _indexed: list[BaseRoute] | None = None
    _size = 0

    def _static(self) -> dict[str, list[Route]]:
        # Rebuilt if the route list was replaced or grew (tests may add routes).
        stale = self._indexed is not self.routes or self._size != len(self.routes)
        if self._index is None or stale:
            index: dict[str, list[Route]] = {}
            for route in self.routes:
                if isinstance(route, Route) and not _has_parameters(route):
                    index.setdefault(route.path, []).append(route)
            self._index, self._indexed, self._size = index, self.routes, len(self.routes)
        return self._index

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only where the path is the route path (no root_path, as uvicorn runs us).
        if scope["type"] == "http" and not scope.get("root_path"):
            candidates = self._static().get(scope["path"])
            if candidates:
                for route in candidates:
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        scope.setdefault("router", self)
                        scope["route"] = route
                        scope.update(child_scope)
                        await route.handle(scope, receive, send)
                        return
        await super().app(scope, receive, _relative_redirects(scope, send))


def _has_parameters(route: Route) -> bool:
    # An ApiRoute answers without compiling its path (see ApiRoute).
    return route.has_parameters if isinstance(route, ApiRoute) else bool(route.param_convertors)


def _relative_redirects(scope: Scope, send: Send) -> Send:
    """Starlette's trailing-slash redirect names the client's ``Host`` in an
    absolute ``Location``; answer with the path (and query) alone."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and 300 <= message["status"] < 400:
            headers = []
            for name, value in message.get("headers", []):
                if name.lower() == b"location":
                    target = urlsplit(value.decode("latin-1"))
                    if target.scheme in ("http", "https"):
                        # One leading slash: "//host/..." would name another host.
                        relative = "/" + target.path.lstrip("/")
                        if target.query:
                            relative += "?" + target.query
                        value = relative.encode("latin-1")
                headers.append((name, value))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
