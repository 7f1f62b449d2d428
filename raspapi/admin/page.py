"""The admin page at ``/admin``: sign in with an admin key, manage keys, see health.

Server-rendered HTML (Jinja2, imported on first use so the daemon stays small
when nobody opens the page), a session cookie (HttpOnly, SameSite=Strict,
signed), a CSRF token in every form, POST-redirect-GET, and strict security
headers. Works without JavaScript; the script only adds copy buttons.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from raspapi import __version__
from raspapi.admin.api import validate_expiry, validate_name, validate_scopes
from raspapi.admin.sessions import Session, Sessions, Signer, Throttle, load_secret
from raspapi.daemon.runtime import Runtime
from raspapi.host.runner import CommandError
from raspapi.host.systemd import Systemd
from raspapi.http.endpoints import webui_dir
from raspapi.http.errors import ApiError, Invalid, Unavailable
from raspapi.http.ratelimit import client_address
from raspapi.http.routing import SCOPES, parse_int
from raspapi.http.timefmt import rfc3339
from raspapi.security.adminkey import KEY_NAME, generate_key, set_env_value
from raspapi.security.auth import Principal
from raspapi.security.keystore import digest

if TYPE_CHECKING:
    import jinja2

SERVICE = "restapi.service"
COOKIE = "raspapi_admin"
LOGIN_COOKIE = "raspapi_login"
FORM_MAX_BYTES = 16 * 1024
JOURNAL_LINES = 50
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# What the journal shows is redacted: the admin key itself, anything that looks
# like a key (32 characters of [0-9a-z]), and whatever follows key=, token=...
_KEYLIKE = re.compile(r"(?<![0-9A-Za-z])[0-9a-z]{32}(?![0-9A-Za-z])")
_ASSIGNED = re.compile(
    r"(?i)((?:access_token|x-api-key|api_key|key|token|password|secret|bearer)"
    r"(?:\s*[=:]\s*|\s+))[^\s&\"',;]+"
)
REDACTED = "[redacted]"


def redact(text: str, known: tuple[str, ...] = ()) -> str:
    for secret in known:
        if secret:
            text = text.replace(secret, REDACTED)
    text = _ASSIGNED.sub(lambda m: m.group(1) + REDACTED, text)
    return _KEYLIKE.sub(REDACTED, text)


class AdminSite:
    """The admin page's state: sessions, throttle, signer and templates."""

    def __init__(self, runtime: Runtime, secret: bytes) -> None:
        self.runtime = runtime
        self.signer = Signer(secret)
        self.sessions = Sessions()
        self.throttle = Throttle()
        self._templates: jinja2.Environment | None = None

    # -- templates ------------------------------------------------------------

    def _environment(self) -> jinja2.Environment:
        if self._templates is None:
            import jinja2  # here: only an admin ever pays for it

            self._templates = jinja2.Environment(
                loader=jinja2.FileSystemLoader(webui_dir() / "templates"),
                autoescape=True,
                auto_reload=False,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
        return self._templates

    async def render(
        self,
        name: str,
        session: Session | None,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        flashes: list[tuple[str, str]] = []
        if session is not None:
            flashes, session.flashes = session.flashes, []
        values = {
            "session": session,
            "flashes": flashes,
            "version": __version__,
            "page": name.removesuffix(".html"),
            **context,
        }
        # Template files are read on first use: off the event loop.
        html = await asyncio.to_thread(
            lambda: self._environment().get_template(f"admin/{name}").render(values)
        )
        return page(html, status_code=status_code, headers=headers)

    # -- sessions -------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        session = self.sessions.get(self.signer.unsign(request.cookies.get(COOKIE)))
        if session is not None and not self.still_admin(session):
            self.sessions.end(session.sid)
            return None
        return session

    def still_admin(self, session: Session) -> bool:
        """Whether the key the session signed in with still works as an admin key."""
        if session.key_id is None:
            current = self.runtime.admin_key.current()
            return current is not None and hmac.compare_digest(digest(current), session.key_sha256)
        keys = self.runtime.keys
        record = keys.by_digest(session.key_sha256) if keys is not None else None
        return record is not None and record.principal.is_admin

    def caller(self, session: Session) -> Principal:
        return Principal(session.name, frozenset(SCOPES), session.key_id)

    def audit(
        self,
        request: Request,
        caller: Principal | None,
        status: int,
        detail: str,
    ) -> None:
        if self.runtime.audit is not None:
            self.runtime.audit.record(
                caller=caller,
                method=request.method,
                path=request.url.path,
                route=_route_path(request),
                status=status,
                client=_client(request),
                detail=detail,
            )


# -- plumbing ---------------------------------------------------------------------


def page(
    html: str, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def site_of(request: Request) -> AdminSite:
    runtime = _runtime(request)
    if runtime.admin_site is None:
        secret = await asyncio.to_thread(load_secret, runtime.settings.state_dir / "admin-secret")
        if runtime.admin_site is None:
            runtime.admin_site = AdminSite(runtime, secret)
    site: AdminSite = runtime.admin_site
    return site


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def _route_path(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


def _secure(request: Request) -> bool:
    """Whether the browser reached us over TLS: directly, or through a TLS proxy
    on this machine (only a loopback peer is trusted to say so)."""
    if request.url.scheme == "https":
        return True
    host = request.client.host if request.client else ""
    loopback = host == "::1" or host.startswith("127.")
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return loopback and forwarded == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    # No Max-Age: gone when the browser closes; the server ends it sooner when idle.
    response.set_cookie(
        name, value, path="/admin", httponly=True, samesite="strict", secure=_secure(request)
    )


def _delete_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path="/admin", httponly=True, samesite="strict", secure=_secure(request)
    )


async def read_form(request: Request) -> dict[str, str] | None:
    """A small url-encoded form (first value of each field), or None if it isn't one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > FORM_MAX_BYTES:
            return None
    try:
        fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}


def _cross_site(request: Request) -> bool:
    """A form posted from another origin (checked besides the CSRF token).

    Browsers say where a request comes from in Sec-Fetch-Site; ``same-site``
    is refused too (RaspAP's GUI on port 80 is another origin of the same
    site). Older browsers send Origin, which is ``null`` under our
    ``Referrer-Policy: no-referrer``, so only a real, different origin counts.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    return origin != f"{request.url.scheme}://{request.headers.get('host', '')}"


async def _refused(site: AdminSite, session: Session | None, why: str) -> HTMLResponse:
    return await site.render("refused.html", session, status_code=403, reason=why)


Handler = Callable[[Request, AdminSite, Session], Awaitable[Response]]


def signed_in(handler: Handler, *, form: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """Only for a signed-in admin; a POST also needs the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        site = await site_of(request)
        session = site.session(request)
        if session is None:
            if request.method == "GET":
                return redirect("/admin/login")
            return await _refused(site, None, "Your session has ended. Sign in again.")
        if form:
            fields = await read_form(request)
            if fields is None or _cross_site(request) or not session.check_csrf(fields.get("csrf")):
                return await _refused(
                    site, session, "The form was not accepted (missing or stale token)."
                )
            request.state.form = fields
        return await handler(request, site, session)

    return endpoint


# -- sign in and out -------------------------------------------------------------


async def login_form(request: Request) -> Response:
    site = await site_of(request)
    if site.session(request) is not None:
        return redirect("/admin")
    return await _login_page(request, site)


async def _login_page(
    request: Request,
    site: AdminSite,
    *,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    token = request.cookies.get(LOGIN_COOKIE)
    if not token or site.signer.unsign(token) is None:
        token = site.signer.sign(generate_key())
    response = await site.render(
        "login.html", None, status_code=status_code, headers=headers, error=error, csrf=token
    )
    _set_cookie(response, request, LOGIN_COOKIE, token)
    return response


async def login(request: Request) -> Response:
    site = await site_of(request)
    # Counted as the rate limits count: IPv6 by /64 (a device picks any address
    # in its prefix).
    client = client_address(_client(request))
    wait = site.throttle.retry_after(client)
    if wait:
        return await _login_page(
            request,
            site,
            error=f"Too many failed sign-ins from {client}. Try again in {wait} seconds.",
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    fields = await read_form(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if (
        fields is None
        or _cross_site(request)
        or not cookie
        or site.signer.unsign(cookie) is None
        or fields.get("csrf") != cookie
    ):
        return await _refused(
            site, None, "The sign-in form was not accepted. Reload the page (cookies are needed)."
        )
    key = fields.get("key", "").strip()
    caller = site.runtime.auth.authenticate(key)
    if caller is None or not caller.is_admin:
        site.throttle.failed(client)
        site.audit(
            request,
            caller,
            401,
            "sign-in refused: " + ("not an admin key" if caller else "wrong key"),
        )
        return await _login_page(
            request,
            site,
            error="That is not an admin key (the .env key, or a key with the admin scope).",
            status_code=401,
        )
    site.throttle.succeeded(client)
    session = site.sessions.create(caller.name, caller.key_id, digest(key))
    site.audit(request, caller, 303, "signed in to the admin page")
    response = redirect("/admin")
    _set_cookie(response, request, COOKIE, site.signer.sign(session.sid))
    _delete_cookie(response, request, LOGIN_COOKIE)
    return response


async def logout(request: Request, site: AdminSite, session: Session) -> Response:
    site.sessions.end(session.sid)
    response = redirect("/admin/login")
    _delete_cookie(response, request, COOKIE)
    return response


# -- status -----------------------------------------------------------------------


def _under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("NOTIFY_SOCKET"))


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


async def _service(runtime: Runtime) -> dict[str, Any]:
    info: dict[str, Any] = {
        "systemd": _under_systemd(),
        "pid": os.getpid(),
        "started_at": rfc3339(runtime.started_at),
        "uptime_seconds": int(time.time() - runtime.started_at),
        "memory_bytes": await asyncio.to_thread(_rss_bytes),
        "unit": None,
        "error": None,
    }
    if info["systemd"]:
        try:
            info["unit"] = (await Systemd(runtime.manager.runner).state(SERVICE)).as_dict()
        except CommandError as exc:
            info["error"] = str(exc)
    return info


@dataclass(frozen=True, slots=True)
class JournalLine:
    at: str
    #: syslog priority: 0 (emergency) .. 7 (debug); 6 (info) when unknown.
    priority: int
    text: str

    @property
    def level(self) -> str:
        """The line's CSS class: ``error`` (0-3), ``warning`` (4), ``info`` (5-7)."""
        if self.priority <= 3:
            return "error"
        return "warning" if self.priority == 4 else "info"


def _journal_line(raw: str, known: tuple[str, ...]) -> JournalLine | None:
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journald's form of a message that is not UTF-8
        message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode(
            "utf-8", errors="replace"
        )
    if not isinstance(message, str):
        message = ""
    try:
        priority = int(entry.get("PRIORITY", 6))
        stamp = time.localtime(int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6)
    except (TypeError, ValueError, OverflowError, OSError):
        priority, stamp = 6, time.localtime(0)
    return JournalLine(
        at=time.strftime("%Y-%m-%dT%H:%M:%S%z", stamp),
        priority=min(max(priority, 0), 7),
        text=redact(message[:2000], known),
    )


async def _journal(
    runtime: Runtime, problems: bool = False
) -> tuple[list[JournalLine], str | None]:
    """The unit's last lines (only warnings and errors with ``problems``), keys redacted."""
    argv = ["journalctl", "-u", SERVICE, "-n", str(JOURNAL_LINES), "--no-pager", "-o", "json"]
    argv.append("--output-fields=MESSAGE,PRIORITY")
    if problems:
        argv += ["-p", "warning"]
    try:
        result = await runtime.manager.runner.run(argv, timeout=10, max_output=512 * 1024)
    except CommandError as exc:
        return [], redact(str(exc))
    known = tuple(k for k in (runtime.admin_key.current(),) if k)
    lines = [_journal_line(raw, known) for raw in result.text.splitlines()[-JOURNAL_LINES:]]
    return [line for line in lines if line is not None], None


async def status(request: Request, site: AdminSite, session: Session) -> Response:
    runtime = site.runtime
    problems = request.query_params.get("journal") == "problems"
    service, statuses, panels, (journal, journal_error) = await asyncio.gather(
        _service(runtime),
        runtime.manager.statuses(),
        runtime.manager.admin_panels(),
        _journal(runtime, problems),
    )
    plugins = [
        {
            "name": name,
            "source": runtime.manager.plugins[name].source,
            "state": st.state,
            "reason": st.reason,
            "panels": name in panels,
        }
        for name, st in sorted(statuses.items())
    ]
    return await site.render(
        "status.html",
        session,
        service=service,
        plugins=plugins,
        counters=runtime.counters,
        journal=journal,
        journal_error=journal_error,
        journal_problems=problems,
        unit=SERVICE,
    )


async def plugin_panels(request: Request, site: AdminSite, session: Session) -> Response:
    name = request.path_params["name"]
    panels = (await site.runtime.manager.admin_panels()).get(name)
    if not panels:
        return await site.render(
            "refused.html", session, status_code=404, reason=f"No plugin {name!r} with panels."
        )
    return await site.render("plugin.html", session, plugin=name, panels=panels)


# -- the admin key ----------------------------------------------------------------


async def key_page(request: Request, site: AdminSite, session: Session) -> Response:
    runtime = site.runtime
    reveal, session.reveal = session.reveal, None
    return await site.render(
        "key.html",
        session,
        env_file=str(runtime.settings.env_file),
        key_name=KEY_NAME,
        overridden=bool(runtime.admin_key.override),
        has_key=runtime.admin_key.current() is not None,
        reveal=reveal,
    )


async def save_key(request: Request, site: AdminSite, session: Session) -> Response:
    runtime = site.runtime
    env_file = runtime.settings.env_file
    key = generate_key()
    caller = site.caller(session)
    try:
        await asyncio.to_thread(set_env_value, env_file, KEY_NAME, key)
    except OSError as exc:
        site.audit(request, caller, 500, f"could not save a new admin key to {env_file}")
        session.flash("error", f"Cannot write {env_file}: {exc.strerror or exc}")
        return redirect("/admin/key")
    if session.key_id is None and not runtime.admin_key.override:
        session.key_sha256 = digest(key)  # this session goes on; others end
    session.reveal = ("admin", key)
    site.audit(request, caller, 303, f"saved a new admin key to {env_file}")
    return redirect("/admin/key")


# -- scoped keys ------------------------------------------------------------------


async def keys_page(
    request: Request,
    site: AdminSite,
    session: Session,
    *,
    error: str | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    keys = site.runtime.keys
    unavailable = None if keys is None else keys.failure
    now = keys.clock() if keys is not None else time.time()
    records = [] if keys is None or unavailable else [r.as_dict(now) for r in keys.records()]
    reveal, session.reveal = session.reveal, None
    return await site.render(
        "keys.html",
        session,
        status_code=status_code,
        keys=records,
        scopes=SCOPES,
        unavailable=unavailable,
        error=error,
        values=values or {"scopes": "read"},
        reveal=reveal,
    )


async def create_key(request: Request, site: AdminSite, session: Session) -> Response:
    keys = site.runtime.keys
    fields: dict[str, str] = request.state.form
    chosen = [s for s in SCOPES if fields.get(f"scope_{s}")]
    values = {**fields, "scopes": " ".join(chosen)}
    try:
        if keys is None:
            raise Unavailable("scoped keys are unavailable")
        name = validate_name(fields.get("name", ""))
        scopes = validate_scopes(chosen)
        days_text = fields.get("expires_in_days", "").strip()
        days: int | None = None
        if days_text:
            days = parse_int(days_text, low=0)
            if days is None:
                raise Invalid("expires_in_days", "a whole number of days, or empty for never")
        expires_at = validate_expiry(days, None, keys.clock())
        record, key = await keys.create(name, scopes, expires_at)
    except ApiError as exc:
        return await keys_page(
            request, site, session, error=exc.detail, values=values, status_code=exc.status_code
        )
    site.audit(
        request,
        site.caller(session),
        303,
        f"created key {record.name!r} ({record.id}) with scopes {','.join(record.scopes)}",
    )
    session.reveal = (record.name, key)
    return redirect("/admin/keys")


async def revoke_key(request: Request, site: AdminSite, session: Session) -> Response:
    keys = site.runtime.keys
    key_id = request.path_params["id"]
    try:
        if keys is None:
            raise Unavailable("scoped keys are unavailable")
        record = await keys.revoke(key_id)
    except ApiError as exc:
        session.flash("error", exc.detail)
        return redirect("/admin/keys")
    site.audit(request, site.caller(session), 303, f"revoked key {record.name!r} ({record.id})")
    session.flash("ok", f"Revoked {record.name!r}: it stopped working at once.")
    return redirect("/admin/keys")


def routes() -> list[Route]:
    return [
        Route("/admin", signed_in(status), methods=["GET"], name="admin_status"),
        Route("/admin/login", login_form, methods=["GET"], name="admin_login_form"),
        Route("/admin/login", login, methods=["POST"], name="admin_login"),
        Route("/admin/logout", signed_in(logout, form=True), methods=["POST"], name="admin_logout"),
        Route("/admin/key", signed_in(key_page), methods=["GET"], name="admin_key"),
        Route(
            "/admin/key", signed_in(save_key, form=True), methods=["POST"], name="admin_key_save"
        ),
        Route("/admin/keys", signed_in(keys_page), methods=["GET"], name="admin_keys"),
        Route(
            "/admin/keys", signed_in(create_key, form=True), methods=["POST"], name="admin_key_new"
        ),
        Route(
            "/admin/keys/{id}/revoke",
            signed_in(revoke_key, form=True),
            methods=["POST"],
            name="admin_key_revoke",
        ),
        Route(
            "/admin/plugins/{name}", signed_in(plugin_panels), methods=["GET"], name="admin_plugin"
        ),
    ]
