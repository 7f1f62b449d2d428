"""The admin page (/admin) over HTTP: sign-in, sessions, CSRF, throttle, headers, pages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.admin.page import AdminSite, redact
from raspapi.admin.sessions import IDLE_SECONDS, Throttle
from raspapi.daemon.runtime import Runtime
from raspapi.settings import Settings
from tests.conftest import AUTH, KEY, MakeClient

PAGES = ["/admin", "/admin/key", "/admin/keys"]
OTHER = "zyxwvutsrqponmlkjihgfedcba987654"


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the form"
    return match.group(1)


def sign_in(client: TestClient, key: str = KEY) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = client.get("/admin/login")
    assert form.status_code == 200
    done = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": key})
    assert done.status_code == 200 and done.url.path == "/admin", done.text
    return csrf_of(done.text)


def site_of(client: TestClient) -> AdminSite:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
    site: AdminSite = runtime.admin_site
    return site


def revealed(html: str) -> str | None:
    match = re.search(r'id="revealed"[^>]*value="([0-9a-z]{32})"', html)
    return match.group(1) if match else None


def assert_admin_headers(response: Any) -> None:
    headers = response.headers
    csp = headers["content-security-policy"]
    for part in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert part in csp
    assert "unsafe-inline" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


def assert_no_inline_code(html: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert " style=" not in html and "<style" not in html


# -- signing in --------------------------------------------------------------------


def test_pages_need_a_session(client: TestClient):
    for path in [*PAGES, "/admin/plugins/x"]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/admin/login"
        assert_admin_headers(response)
    for path in ("/admin/key", "/admin/keys", "/admin/logout", "/admin/keys/x/revoke"):
        response = client.post(path, data={"csrf": "x"})
        assert response.status_code == 403, path
    assert client.get("/admin/key").url.path == "/admin/login"


def test_sign_in_gives_a_strict_signed_session_cookie(client: TestClient):
    form = client.get("/admin/login")
    assert_admin_headers(form)
    assert_no_inline_code(form.text)
    response = client.post(
        "/admin/login", data={"csrf": csrf_of(form.text), "key": KEY}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/admin"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("raspapi_admin=")
    )
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "path=/admin", "samesite=strict"} <= attributes
    assert not any(a.startswith(("max-age", "expires")) for a in attributes)
    assert KEY not in cookie
    page = client.get("/admin")
    assert page.status_code == 200 and "Plugins" in page.text
    # A forged or altered cookie is no session.
    value = client.cookies["raspapi_admin"]
    client.cookies.set("raspapi_admin", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert client.get("/admin").url.path == "/admin/login"


def test_a_wrong_or_non_admin_key_is_refused(client: TestClient):
    reader = client.post("/api/v1/keys", json={"name": "r", "scopes": ["read"]}, headers=AUTH)
    for key in (OTHER, reader.json()["key"], ""):
        form = client.get("/admin/login")
        response = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": key})
        assert response.status_code == 401
        assert "not an admin key" in response.text
        assert client.get("/admin").url.path == "/admin/login"


def test_an_admin_scoped_key_signs_in_and_its_revocation_ends_the_session(client: TestClient):
    made = client.post("/api/v1/keys", json={"name": "ops", "scopes": ["admin"]}, headers=AUTH)
    sign_in(client, made.json()["key"])
    page = client.get("/admin")
    assert "signed in with the key <strong>ops</strong>" in page.text
    client.delete(f"/api/v1/keys/{made.json()['id']}", headers=AUTH)
    assert client.get("/admin").url.path == "/admin/login"


def test_sign_in_is_throttled_after_repeated_failures(client: TestClient):
    for attempt in range(5):
        form = client.get("/admin/login")
        response = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": OTHER})
        assert response.status_code == 401, attempt
    form = client.get("/admin/login")
    blocked = client.post("/admin/login", data={"csrf": csrf_of(form.text), "key": KEY})
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 2
    assert "Too many failed sign-ins" in blocked.text
    assert_admin_headers(blocked)
    assert client.get("/admin").url.path == "/admin/login"  # even the right key waited
    # Once the wait is over, the right key works (and clears the record).
    throttle = site_of(client).throttle
    throttle.clock = lambda: time.monotonic() + 3
    assert sign_in(client)


def test_throttle_doubles_the_wait_per_address():
    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0])
    for _ in range(4):
        throttle.failed("10.0.0.2")
    assert throttle.retry_after("10.0.0.2") == 0
    waits = []
    for _ in range(4):
        throttle.failed("10.0.0.2")
        waits.append(throttle.retry_after("10.0.0.2"))
    assert waits == [2, 4, 8, 16]
    assert throttle.retry_after("10.0.0.3") == 0  # per address
    for _ in range(20):
        throttle.failed("10.0.0.2")
    assert throttle.retry_after("10.0.0.2") == 900  # capped
    now[0] += 900 + 901
    assert throttle.retry_after("10.0.0.2") == 0
    throttle.succeeded("10.0.0.2")
    throttle.failed("10.0.0.2")
    assert throttle.retry_after("10.0.0.2") == 0


def test_sessions_end_when_idle_and_on_sign_out(client: TestClient):
    csrf = sign_in(client)
    sessions = site_of(client).sessions
    sessions.clock = lambda: time.time() + IDLE_SECONDS + 5
    assert client.get("/admin").url.path == "/admin/login"
    sessions.clock = time.time
    csrf = sign_in(client)
    out = client.post("/admin/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/admin/login"
    client.cookies.clear()
    assert client.get("/admin").url.path == "/admin/login"


# -- CSRF ------------------------------------------------------------------------------


def test_forms_without_the_csrf_token_are_rejected(client: TestClient):
    csrf = sign_in(client)
    for data in ({"name": "sneaky", "scope_admin": "1"}, {"name": "sneaky", "csrf": "forged"}):
        response = client.post("/admin/keys", data=data)
        assert response.status_code == 403
        assert "not accepted" in response.text
        assert_admin_headers(response)
    cross = client.post(
        "/admin/keys",
        data={"name": "sneaky", "scope_admin": "1", "csrf": csrf},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    for site in ("cross-site", "same-site"):  # same-site: e.g. RaspAP's GUI on port 80
        response = client.post(
            "/admin/keys",
            data={"name": "sneaky", "scope_admin": "1", "csrf": csrf},
            headers={"Sec-Fetch-Site": site, "Origin": "null"},
        )
        assert response.status_code == 403, site
    as_json = client.post("/admin/keys", json={"name": "sneaky", "csrf": csrf})
    assert as_json.status_code == 403
    assert client.post("/admin/key", data={}).status_code == 403
    assert client.get("/api/v1/keys", headers=AUTH).json() == {"keys": []}
    assert client.get("/system", headers=AUTH).status_code == 200  # key unchanged
    # What a browser sends for its own form under Referrer-Policy: no-referrer.
    same = client.post(
        "/admin/keys",
        data={"name": "fine", "scope_read": "1", "csrf": csrf},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "null"},
    )
    assert same.status_code == 200 and revealed(same.text)


def test_sign_in_form_needs_its_own_token(client: TestClient):
    client.get("/admin/login")
    assert client.post("/admin/login", data={"key": KEY}).status_code == 403
    assert client.post("/admin/login", data={"key": KEY, "csrf": "x.y"}).status_code == 403
    client.cookies.clear()
    form = client.get("/admin/login")
    token = csrf_of(form.text)
    client.cookies.clear()  # a form without its cookie: another site's
    assert client.post("/admin/login", data={"key": KEY, "csrf": token}).status_code == 403


# -- the admin key --------------------------------------------------------------------


def test_generate_and_save_the_admin_key(settings: Settings, client: TestClient):
    csrf = sign_in(client)
    page = client.get("/admin/key")
    assert_no_inline_code(page.text)
    assert KEY not in page.text and revealed(page.text) is None
    done = client.post("/admin/key", data={"csrf": csrf})
    assert done.url.path == "/admin/key"
    new = revealed(done.text)
    assert new and new != KEY
    assert "works now, without a restart" in done.text
    assert settings.env_file.read_text() == f"RASPAP_API_KEY={new}\n"
    assert oct(settings.env_file.stat().st_mode & 0o777) == "0o600"
    # In effect at once: the old key fails, the new one works.
    assert client.get("/system", headers=AUTH).status_code == 403
    assert client.get("/system", headers={"access_token": new}).status_code == 200
    # Shown once; the session that saved it goes on.
    again = client.get("/admin/key")
    assert again.url.path == "/admin/key" and revealed(again.text) is None
    entries = client.get("/api/v1/audit", headers={"access_token": new}).json()["entries"]
    assert entries[0]["detail"] == f"saved a new admin key to {settings.env_file}"
    assert entries[0]["key_name"] == "admin" and entries[0]["status"] == 303
    assert new not in str(entries)


def test_other_sessions_of_the_old_key_end(make_client: MakeClient):
    first = make_client()
    other = TestClient(first.app)
    csrf = sign_in(first)
    sign_in(other)
    first.post("/admin/key", data={"csrf": csrf})
    assert first.get("/admin").url.path == "/admin"
    assert other.get("/admin").url.path == "/admin/login"


def test_an_environment_key_overrides_the_file_and_the_page_says_so(
    settings: Settings, make_client: MakeClient
):
    client = make_client(api_key_override=OTHER)
    csrf = sign_in(client, OTHER)
    page = client.get("/admin/key")
    assert "environment variable is set" in page.text
    done = client.post("/admin/key", data={"csrf": csrf})
    assert "overrides the file" in done.text
    assert client.get("/system", headers={"access_token": OTHER}).status_code == 200
    assert client.get("/admin").url.path == "/admin"


# -- scoped keys -------------------------------------------------------------------------


def test_create_list_and_revoke_scoped_keys(client: TestClient):
    csrf = sign_in(client)
    page = client.get("/admin/keys")
    assert "No scoped keys yet" in page.text
    made = client.post(
        "/admin/keys",
        data={
            "csrf": csrf,
            "name": "kitchen <sensor>",
            "scope_ingest": "1",
            "expires_in_days": "30",
        },
    )
    assert made.url.path == "/admin/keys"
    key = revealed(made.text)
    assert key
    assert "kitchen &lt;sensor&gt;" in made.text and "<sensor>" not in made.text
    assert_no_inline_code(made.text)
    assert revealed(client.get("/admin/keys").text) is None  # once
    listed = client.get("/api/v1/keys", headers=AUTH).json()["keys"]
    assert [(k["name"], k["scopes"]) for k in listed] == [("kitchen <sensor>", ["ingest"])]
    assert listed[0]["expires_at"] is not None
    key_id = listed[0]["id"]
    # An ingest key cannot read.
    assert client.get("/system", headers={"access_token": key}).status_code == 403
    revoked = client.post(f"/admin/keys/{key_id}/revoke", data={"csrf": csrf})
    assert revoked.url.path == "/admin/keys"
    assert "stopped working at once" in revoked.text
    assert client.get("/api/v1/keys", headers=AUTH).json()["keys"][0]["state"] == "revoked"
    details = [e["detail"] for e in client.get("/api/v1/audit", headers=AUTH).json()["entries"]]
    assert details[0] == f"revoked key 'kitchen <sensor>' ({key_id})"
    assert details[1].startswith("created key 'kitchen <sensor>'")
    missing = client.post("/admin/keys/nope/revoke", data={"csrf": csrf})
    assert "no key with id" in missing.text


def test_a_bad_key_form_is_shown_again_with_the_problem(client: TestClient):
    csrf = sign_in(client)
    cases = [
        ({"name": "", "scope_read": "1"}, "name: must be 1 to 64"),
        ({"name": "dash"}, "scopes: must be a non-empty list"),
        ({"name": "dash", "scope_read": "1", "expires_in_days": "soon"}, "whole number of days"),
        ({"name": "dash", "scope_read": "1", "expires_in_days": "0"}, "expires_in_days"),
    ]
    for data, problem in cases:
        response = client.post("/admin/keys", data={"csrf": csrf, **data})
        assert response.status_code == 422, data
        assert problem in response.text
        assert 'value="dash"' in response.text or not data["name"]
    assert client.get("/api/v1/keys", headers=AUTH).json() == {"keys": []}


# -- status --------------------------------------------------------------------------

# journalctl -o json: one object a line; a message that is not UTF-8 is a list of bytes.
JOURNAL_ENTRIES: list[tuple[int, object]] = [
    (6, "INFO raspapi: raspapi listening on http://0.0.0.0:8081"),
    (4, "WARNING x: saw key {key} in a header"),
    (6, "INFO x: GET /system?access_token=hunter2hunter2 200"),
    (6, "INFO x: token 9f8e7d6c5b4a39281706f5e4d3c2b1a0 seen"),
    (3, "ERROR x: RASPAP_API_KEY=supersecret saved"),
    (6, "INFO x: <b>bold</b> stays text"),
    (6, list(b"INFO x: bytes \xff")),
    (2, None),
]
JOURNAL = """\
#!/bin/sh
echo "$*" > "$(dirname "$0")/../../journalctl.args"
lines() {{
cat <<'EOF'
{entries}
not json
EOF
}}
case " $* " in
    *" -p warning "*) lines | grep -E '"PRIORITY": "[0-4]"' ;;
    *) lines ;;
esac
"""


def journal_stub(key: str) -> str:
    entries = [
        {
            "__REALTIME_TIMESTAMP": str((1710065471 + i) * 1_000_000),
            "PRIORITY": str(priority),
            "MESSAGE": message.format(key=key) if isinstance(message, str) else message,
        }
        for i, (priority, message) in enumerate(JOURNAL_ENTRIES)
    ]
    return JOURNAL.format(entries="\n".join(json.dumps(e) for e in entries))


def test_status_page_outside_systemd(
    settings: Settings, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    journal = settings.root / "usr" / "bin" / "journalctl"
    journal.write_text(journal_stub(KEY))
    journal.chmod(0o755)
    client = make_client()
    sign_in(client)
    for _ in range(3):
        client.get("/nowhere")
    page = client.get("/admin")
    assert_admin_headers(page)
    assert_no_inline_code(page.text)
    assert "not running under systemd" in page.text
    served = int(re.search(r'id="requests">(\d+)<', page.text).group(1))  # type: ignore[union-attr]
    assert served >= 6
    assert re.search(r"Client errors \(4xx\)</dt><dd>([3-9]|\d\d+)<", page.text)
    # Plugins, their states and reasons.
    assert "hostapd" in page.text and "unavailable" in page.text
    # The journal: asked for the unit's last 50 lines, keys redacted, HTML escaped.
    args = (settings.root / "journalctl.args").read_text().split()
    assert args == [
        "-u", "restapi.service", "-n", "50", "--no-pager", "-o", "json",
        "--output-fields=MESSAGE,PRIORITY",
    ]  # fmt: skip
    assert "raspapi listening on http://0.0.0.0:8081" in page.text
    assert "INFO x: bytes \ufffd" in page.text
    for secret in (KEY, "hunter2hunter2", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "supersecret"):
        assert secret not in page.text
    assert page.text.count("[redacted]") >= 4
    assert "&lt;b&gt;bold&lt;/b&gt;" in page.text
    assert 'href="/docs"' in page.text


def test_journal_panel_highlights_problems_and_can_show_only_them(
    settings: Settings, make_client: MakeClient
):
    journal = settings.root / "usr" / "bin" / "journalctl"
    journal.write_text(journal_stub(KEY))
    journal.chmod(0o755)
    client = make_client()
    sign_in(client)
    page = client.get("/admin")
    log = re.search(r'<pre class="log">(.*?)</pre>', page.text, re.S).group(1)  # type: ignore[union-attr]
    spans = re.findall(r'<span class="(\w+)">([^<]*)</span>', log)
    assert [level for level, _ in spans] == [
        "info", "warning", "info", "info", "error", "info", "info", "error",
    ]  # fmt: skip
    assert "saw key [redacted] in a header" in spans[1][1]
    assert re.match(r"2024-03-10T\d\d:\d\d:12[+-]\d{4} WARNING x", spans[1][1])
    assert 'href="/admin?journal=problems#journal"' in page.text  # a link: no script needed
    assert "Last 8 log lines" in page.text

    only = client.get("/admin?journal=problems")
    assert_admin_headers(only)
    assert_no_inline_code(only.text)
    args = (settings.root / "journalctl.args").read_text().split()
    assert args[-2:] == ["-p", "warning"]
    log = re.search(r'<pre class="log">(.*?)</pre>', only.text, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r'<span class="(\w+)">', log) == ["warning", "error", "error"]
    assert "Last 3 warnings and errors" in only.text
    assert 'href="/admin#journal">all lines</a>' in only.text
    assert "supersecret" not in only.text and KEY not in only.text
    # Anything else in the query shows every line.
    assert "Last 8 log lines" in client.get("/admin?journal=%00" + "x" * 5000).text


def test_status_page_under_systemd(
    settings: Settings, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
    client = make_client()
    sign_in(client)
    page = client.get("/admin")
    assert "active (running)" in page.text
    assert "Sun 2024-03-10 11:11:11 CET" in page.text
    assert "<dt>Main PID</dt><dd>812</dd>" in page.text
    assert "5.1 MiB" in page.text
    log = (settings.root / "fake" / "systemctl.log").read_text()
    assert "restapi.service" in log


def test_redaction():
    assert redact(f"key {KEY} here") == "key [redacted] here"
    assert redact("x-api-key: abc123 ok") == "x-api-key: [redacted] ok"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"
    assert redact("GET /x?access_token=abc&y=1") == "GET /x?access_token=[redacted]&y=1"
    assert redact("custom secret-ish value", ("secret-ish",)) == "custom [redacted] value"
    assert redact("plain line") == "plain line"
    assert redact("0123456789ABCDEFGHIJKLMNOPQRSTUV") == "0123456789ABCDEFGHIJKLMNOPQRSTUV"


# -- plugin panels -------------------------------------------------------------------

PANELS = """
    from raspapi import hookimpl
    from raspapi.admin.panels import Panel

    @hookimpl
    async def raspapi_admin_panels(ctx):
        return [
            Panel("Sensors", text="Three <b>sensors</b> report.",
                  rows=[("kitchen", "21.5 °C"), ("attic", "<script>x</script>")],
                  links=[("API", "/api/v1/weather"), ("Vendor", "https://example.org/")]),
            Panel("Second"),
        ]
"""


def test_hook_raspapi_admin_panels(settings: Settings, make_client: MakeClient):
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / "weather.py").write_text(textwrap.dedent(PANELS))
    (settings.plugins_dir / "brokenpanel.py").write_text(
        textwrap.dedent(
            """
            from raspapi import hookimpl
            from raspapi.admin.panels import Panel

            @hookimpl
            def raspapi_admin_panels(ctx):
                return Panel("Bad", links=[("x", "javascript:alert(1)")])
            """
        )
    )
    (settings.plugins_dir / "wrongtype.py").write_text(
        "from raspapi import hookimpl\n\n@hookimpl\ndef raspapi_admin_panels(ctx):\n"
        "    return [{'title': 'not a Panel'}]\n"
    )
    client = make_client()
    sign_in(client)
    status = client.get("/admin")
    assert 'href="/admin/plugins/weather"' in status.text
    assert "/admin/plugins/brokenpanel" not in status.text
    assert "/admin/plugins/wrongtype" not in status.text
    page = client.get("/admin/plugins/weather")
    assert page.status_code == 200
    assert_admin_headers(page)
    assert_no_inline_code(page.text)
    assert "<h2>Sensors</h2>" in page.text and "<h2>Second</h2>" in page.text
    assert "Three &lt;b&gt;sensors&lt;/b&gt; report." in page.text
    assert "<dt>kitchen</dt><dd>21.5 °C</dd>" in page.text
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text
    assert 'href="https://example.org/"' in page.text
    assert client.get("/admin/plugins/brokenpanel").status_code == 404
    assert client.get("/admin/plugins/nothing").status_code == 404
    # The failing hooks were isolated: their plugins still serve and report.
    assert client.get("/ready", headers=AUTH).json()["plugins"]["brokenpanel"]["state"] == "ok"


def test_panel_links_are_checked():
    from raspapi.admin.panels import Panel

    Panel("ok", links=[("a", "/x"), ("b", "http://h/"), ("c", "https://h/")])
    for href in ("javascript:alert(1)", "//evil.example/", "data:text/html,x", "x"):
        with pytest.raises(ValueError):
            Panel("bad", links=[("a", href)])
    with pytest.raises(ValueError):
        Panel("  ")


# -- assets and weight -------------------------------------------------------------


def test_static_files_of_the_page(client: TestClient):
    css = client.get("/static/admin/admin.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "@media" in css.text
    script = client.get("/static/admin/admin.js")
    assert script.status_code == 200 and "data-copy" in script.text


def test_jinja2_is_imported_only_when_the_admin_page_is_used(settings: Settings):
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from starlette.testclient import TestClient
        from raspapi.app import create_app
        from raspapi.settings import Settings

        settings = Settings(env_file=Path({str(settings.env_file)!r}),
                            root=Path({str(settings.root)!r}),
                            state_dir=Path({str(settings.state_dir)!r}),
                            plugins_dir=Path({str(settings.plugins_dir)!r}),
                            access_log=False, entry_points=False)
        with TestClient(create_app(settings)) as client:
            assert client.get("/system", headers={{"access_token": {KEY!r}}}).status_code == 200
            assert client.get("/docs").status_code == 200
            before = "jinja2" in sys.modules
            assert client.get("/admin/login").status_code == 200
            print(before, "jinja2" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]
