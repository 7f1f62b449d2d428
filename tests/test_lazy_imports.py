"""Start-up imports only what a request path needs (issue 16: memory).

The admin page, the static files, gzip and csv are imported on first
use; these tests hold that, and that the parts built on first use still answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.first_answer import first_answers
from raspapi.http.endpoints import webui_dir
from tests.conftest import FIXTURE_ROOT, KEY

#: Modules no request to /system, and no sample, needs.
LAZY = (
    "raspapi.admin.page",
    "raspapi.admin.sessions",
    "starlette.staticfiles",
    "gzip",
    "csv",
    "zipfile",
    "importlib.resources.readers",
)

PROGRAM = """
import asyncio, json, sys
from pathlib import Path
from raspapi.app import create_app
from raspapi.settings import Settings

tmp = Path(sys.argv[1])
settings = Settings(env_file=tmp / ".env", root=Path(sys.argv[2]), state_dir=tmp / "state",
                    plugins_dir=tmp / "plugins.d", access_log=False, entry_points=False)
app = create_app(settings)

async def started() -> list[str]:
    async with app.router.lifespan_context(app):
        return sorted(sys.modules)

at_start = asyncio.run(started())
from starlette.testclient import TestClient
second = create_app(settings)  # a started app does not start again
with TestClient(second) as client:
    answers = {p: client.get(p, follow_redirects=False).status_code
               for p in ("/admin/login", "/admin", "/static/admin/admin.css", "/adminx",
                         "/admin/keys/")}
    answers["/system"] = client.get("/system", headers={"access_token": sys.argv[3]}).status_code
    templates = sorted({s.route for s in second.state.runtime.requests.snapshot()})
print(json.dumps({"at_start": at_start, "answers": answers, "after": sorted(sys.modules),
                  "templates": templates}))
"""


def test_start_up_leaves_first_use_modules_out_and_they_still_answer(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"RASPAP_API_KEY={KEY}\n")
    env.chmod(0o600)
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path), str(FIXTURE_ROOT), KEY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert [m for m in LAZY if m in result["at_start"]] == []
    # Every plugin was loaded all the same (a module list this short is no accident).
    assert "raspapi.plugins.system" in result["at_start"]
    assert "raspapi.plugins.usage.api" in result["at_start"]
    assert result["answers"] == {
        "/admin/login": 200,
        "/admin": 303,
        "/static/admin/admin.css": 200,
        "/adminx": 404,
        "/admin/keys/": 307,
        "/system": 200,
    }
    # Request metrics name the admin routes as before, never the catch-all in front.
    assert result["templates"] == [
        "/admin",
        "/admin/login",
        "/static/{path:path}",
        "/system",
        "unmatched",
    ]
    assert "raspapi.admin.page" in result["after"]
    assert "starlette.staticfiles" in result["after"]


def test_webui_dir_is_the_folder_with_the_pages() -> None:
    assert (webui_dir() / "static" / "admin" / "admin.css").is_file()


#: Not imported by the time ``raspapi serve`` answers its first ``GET /system``
#: (plugins loaded on demand, with the manifest of an earlier start): what only
#: other routes, the admin page or ``raspapi check`` use, and the plugins that
#: add nothing to /system (issue 16: start-up on a Pi).
NOT_BEFORE_FIRST_ANSWER = (
    "psutil",  # disk usage is one statvfs(3); the process table waits for its route
    "raspapi.plugins.system.processes",
    "raspapi.admin.panels",
    "raspapi.daemon.installation",
    "raspapi.telemetry.ahead",  # the first scrape makes the scrape-ahead
    "raspapi.plugins.wireguard",
    "raspapi.plugins.wifi",
    "raspapi.plugins.usage",
    "raspapi.plugins.clients",
)


def test_the_first_system_answer_imports_only_what_it_needs() -> None:
    """What bench.first_answer reports: two starts of the deferred app, each
    answering one /system in a fresh process."""
    first, second = first_answers()
    assert first["status"] == second["status"] == 200
    # No manifest yet: every plugin loads before the first start's answer.
    assert "raspapi.plugins.wireguard" in first["modules"]
    modules = second["modules"]
    assert [m for m in NOT_BEFORE_FIRST_ANSWER if m in modules] == []
    # /system's own plugins did load (a list this short is no accident).
    assert {"raspapi.plugins.system", "raspapi.plugins.hostapd", "raspapi.plugins.thermal"} <= set(
        modules
    )
