"""The admin page in a real headless browser (Debian's chromium, driven by Playwright),
against the real daemon started as a process.

Playwright drives the system browser (``/usr/bin/chromium``); it never downloads
one. Without chromium or Playwright these tests skip, except under CI
(``CI=true``), where they fail. Set ``RASPAPI_SCREENSHOTS=<folder>`` to keep a
screenshot of each page on a phone and a desktop screen.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import re
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from raspapi.settings import Settings
from tests.conftest import KEY
from tests.test_cli import CLI, env_for, free_port, stop

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page, ViewportSize

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("RASPAPI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, ViewportSize] = {
    "phone": {"width": 390, "height": 844},
    "desktop": {"width": 1280, "height": 860},
}
WRONG = "zyxwvutsrqponmlkjihgfedcba987654"
_INFO = {
    "__REALTIME_TIMESTAMP": "1710065471000000",
    "PRIORITY": "6",
    "MESSAGE": "INFO raspapi: raspapi listening on http://0.0.0.0:8081",
}
_WARNING = {
    "__REALTIME_TIMESTAMP": "1710065472000000",
    "PRIORITY": "4",
    "MESSAGE": f"WARNING raspapi: a client sent {KEY} in a query",
}
#: journalctl -o json, honouring -p warning as the real one does.
JOURNAL = f"""#!/bin/sh
case " $* " in
    *" -p warning "*) cat <<'EOF'
{json.dumps(_WARNING)}
EOF
    ;;
    *) cat <<'EOF'
{json.dumps(_INFO)}
{json.dumps(_WARNING)}
EOF
    ;;
esac
"""


def require_browser() -> None:
    problems = []
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no browser at {CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        problems.append("Playwright is not installed (pip install -e '.[test]')")
    if problems:
        message = "; ".join(problems)
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI: {message}")
        pytest.skip(message)


# -- the daemon ----------------------------------------------------------------------


@dataclass
class Daemon:
    url: str
    port: int
    settings: Settings
    proc: subprocess.Popen[str]
    secrets: list[str] = field(default_factory=list)

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.headers, response.read()
        finally:
            conn.close()

    def status_with(self, key: str, path: str = "/system") -> int:
        return self.request("GET", path, {"access_token": key})[0]


@pytest.fixture
def daemon(settings: Settings) -> Iterator[Daemon]:
    journal = settings.root / "usr" / "bin" / "journalctl"
    journal.write_text(JOURNAL)
    journal.chmod(0o755)
    port = free_port()
    env = env_for(settings, RASPAPI_LOG_LEVEL="info")
    for name in ("INVOCATION_ID", "NOTIFY_SOCKET"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Daemon(f"http://127.0.0.1:{port}", port, settings, proc, [KEY])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if running.request("GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("the daemon did not answer /health")
        yield running
    finally:
        stderr = stop(proc)
    assert proc.returncode == 0, stderr
    for secret in running.secrets:
        assert secret not in stderr, "a key reached the log"
    assert "Traceback" not in stderr


# -- the browser ---------------------------------------------------------------------


@contextlib.contextmanager
def chromium(profile: Path, *, javascript: bool = True) -> Iterator[BrowserContext]:
    """The system chromium with a fresh profile (so its own cookies)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORTS["desktop"],
            java_script_enabled=javascript,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    with chromium(tmp_path / "chromium-profile") as context:
        yield context


def open_page(context: BrowserContext, viewport: str) -> tuple[Page, list[str]]:
    """A page that records console errors (a CSP violation is one)."""
    page = context.pages[0] if context.pages else context.new_page()
    page.set_viewport_size(VIEWPORTS[viewport])
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


def shot(page: Page, viewport: str, name: str) -> None:
    folder = os.environ.get("RASPAPI_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{viewport}-{name}.png"), full_page=True)


def sign_in(page: Page, daemon: Daemon, key: str) -> None:
    page.goto(f"{daemon.url}/admin")
    assert urllib.parse.urlparse(page.url).path == "/admin/login"
    page.fill("#key", key)
    follow(page, "button[type=submit]")


def follow(page: Page, target: str | Locator) -> None:
    """Click a link or submit button and wait for the page it leads to."""
    with page.expect_navigation():
        if isinstance(target, str):
            page.click(target)
        else:
            target.click()


def path_of(page: Page) -> str:
    return urllib.parse.urlparse(page.url).path


# -- the tests -----------------------------------------------------------------------


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_an_admin_manages_keys_and_reads_the_status(
    daemon: Daemon, browser: BrowserContext, viewport: str
):
    page, errors = open_page(browser, viewport)
    page.goto(f"{daemon.url}/admin")
    shot(page, viewport, "login")
    sign_in(page, daemon, KEY)

    # Status: service, plugins, counters, redacted journal, links.
    assert path_of(page) == "/admin"
    assert page.is_visible("text=not running under systemd")
    plugins = page.inner_text("table.plugins")
    assert "system" in plugins and "unavailable" in plugins  # hostapd: no control socket
    assert int(page.inner_text("#requests")) >= 2
    log = page.inner_text("pre.log")
    assert "raspapi listening on" in log and KEY not in log and "[redacted]" in log
    # Warnings stand out (the stylesheet is allowed by the CSP), and a link shows only them.
    warning = page.locator("pre.log .warning")
    assert "[redacted]" in warning.inner_text()
    color = "el => getComputedStyle(el).color"
    assert warning.evaluate(color) != page.locator("pre.log .info").evaluate(color)
    follow(page, "#journal-problems")
    assert urllib.parse.urlparse(page.url).query == "journal=problems"
    assert page.locator("pre.log span").count() == 1
    assert "a client sent [redacted]" in page.inner_text("pre.log")
    follow(page, "text=all lines")
    assert page.locator("pre.log span").count() == 2
    assert page.get_attribute("a[href='/docs']", "href") == "/docs"
    shot(page, viewport, "status")

    # The admin key: generate and save; shown once; in effect without a restart.
    follow(page, "nav >> text=API key")
    assert path_of(page) == "/admin/key"
    shot(page, viewport, "key")
    follow(page, "#generate")
    new_key = page.input_value("#revealed")
    assert re.fullmatch(r"[0-9a-z]{32}", new_key) and new_key != KEY
    daemon.secrets.append(new_key)
    assert page.is_visible("text=works now, without a restart")
    copy = page.locator("button.copy")
    assert copy.is_visible()  # the script is allowed by the CSP and ran
    copy.click()
    page.wait_for_function("document.querySelector('button.copy').textContent === 'Copied'")
    shot(page, viewport, "key-saved")
    assert daemon.status_with(KEY) == 403
    assert daemon.status_with(new_key) == 200
    assert daemon.settings.env_file.read_text() == f"RASPAP_API_KEY={new_key}\n"
    page.reload()
    assert page.locator("#revealed").count() == 0  # once

    # Scoped keys: create a read-only key for a dashboard, use it, revoke it.
    follow(page, "nav >> text=Scoped keys")
    assert path_of(page) == "/admin/keys"
    page.fill("#name", "dashboard")
    page.check("input[name=scope_read]")
    page.fill("#expires", "30")
    follow(page, "text=Create key")
    dashboard = page.input_value("#revealed")
    assert re.fullmatch(r"[0-9a-z]{32}", dashboard)
    daemon.secrets.append(dashboard)
    assert daemon.status_with(dashboard) == 200
    assert daemon.status_with(dashboard, "/api/v1/keys") == 403
    page.fill("#name", "kitchen sensor")
    page.uncheck("input[name=scope_read]")
    page.check("input[name=scope_ingest]")
    follow(page, "text=Create key")
    sensor = page.input_value("#revealed")
    daemon.secrets.append(sensor)
    assert daemon.status_with(sensor) == 403  # ingest only
    shot(page, viewport, "keys")
    row = page.locator("tr", has_text="dashboard")
    assert "active" in row.inner_text()
    follow(page, row.locator("button", has_text="Revoke"))
    assert page.is_visible("text=stopped working at once")
    assert "revoked" in page.locator("tr", has_text="dashboard").inner_text()
    assert daemon.status_with(dashboard) == 403

    # The status page still reads well after all that.
    follow(page, "nav >> text=Status")
    assert path_of(page) == "/admin"
    assert int(page.inner_text("#requests")) > 10
    assert errors == []


def test_sign_in_is_throttled_in_the_browser(daemon: Daemon, browser: BrowserContext):
    page, _ = open_page(browser, "phone")
    page.goto(f"{daemon.url}/admin/login")
    for _ in range(5):
        page.fill("#key", WRONG)
        with page.expect_navigation() as answer:
            page.click("button[type=submit]")
        assert answer.value is not None and answer.value.status == 401
        assert page.is_visible("text=not an admin key")
    page.fill("#key", KEY)  # even the right key waits now
    with page.expect_navigation() as answer:
        page.click("button[type=submit]")
    assert answer.value is not None and answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) >= 1
    assert page.is_visible("text=Too many failed sign-ins")
    assert path_of(page) == "/admin/login"
    shot(page, "phone", "throttled")


def test_the_essentials_work_without_javascript(daemon: Daemon, tmp_path: Path):
    with chromium(tmp_path / "profile", javascript=False) as context:
        page, errors = open_page(context, "phone")
        sign_in(page, daemon, KEY)
        assert path_of(page) == "/admin"
        follow(page, "#journal-problems")  # the journal filter is a plain link
        assert page.locator("pre.log span.warning").count() == 1
        assert page.locator("pre.log span.info").count() == 0
        follow(page, "nav >> text=Scoped keys")
        page.fill("#name", "grafana")
        follow(page, "text=Create key")
        key = page.input_value("#revealed")
        daemon.secrets.append(key)
        assert not page.locator("button.copy").is_visible()  # the script adds it
        assert daemon.status_with(key) == 200
        follow(page, page.locator("tr", has_text="grafana").locator("button", has_text="Revoke"))
        assert daemon.status_with(key) == 403
        follow(page, "nav >> text=API key")
        follow(page, "#generate")
        new_key = page.input_value("#revealed")
        daemon.secrets.append(new_key)
        assert daemon.status_with(new_key) == 200 and daemon.status_with(KEY) == 403
        follow(page, "text=Sign out")
        assert path_of(page) == "/admin/login"
        assert errors == []


def test_csrf_is_rejected_without_the_token(daemon: Daemon):
    # Sign in over plain HTTP, as a script would.
    status, headers, body = daemon.request("GET", "/admin/login")
    token = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]
    login_cookie = headers["Set-Cookie"].split(";")[0]
    status, headers, _ = daemon.request(
        "POST",
        "/admin/login",
        {"Cookie": login_cookie, "Content-Type": "application/x-www-form-urlencoded"},
        urllib.parse.urlencode({"csrf": token, "key": KEY}),
    )
    assert status == 303
    session = next(
        cookie.split(";")[0]
        for cookie in headers.get_all("Set-Cookie") or []
        if cookie.startswith("raspapi_admin=")
    )
    form = {"Cookie": session, "Content-Type": "application/x-www-form-urlencoded"}
    status, headers, body = daemon.request("GET", "/admin/keys", {"Cookie": session})
    assert status == 200
    csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]

    no_token = urllib.parse.urlencode({"name": "evil", "scope_admin": "1"})
    assert daemon.request("POST", "/admin/keys", form, no_token)[0] == 403
    wrong = urllib.parse.urlencode({"name": "evil", "scope_admin": "1", "csrf": "forged"})
    assert daemon.request("POST", "/admin/keys", form, wrong)[0] == 403
    assert daemon.request("POST", "/admin/key", form, "")[0] == 403
    cross = {**form, "Origin": "http://evil.example"}
    good = urllib.parse.urlencode({"name": "evil", "scope_admin": "1", "csrf": csrf})
    assert daemon.request("POST", "/admin/keys", cross, good)[0] == 403
    status, _, body = daemon.request("GET", "/api/v1/keys", {"access_token": KEY})
    assert status == 200 and body == b'{"keys":[]}'
    assert daemon.status_with(KEY) == 200
    # With the token, the same form works.
    status, headers, _ = daemon.request("POST", "/admin/keys", form, good)
    assert status == 303 and headers["Location"] == "/admin/keys"
