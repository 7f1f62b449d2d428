"""A test harness for plugin authors: the real app around just your plugin.

from raspapi.testing import make_app
import my_plugin

def test_uptime(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "uptime").write_text("12.5 40.0\\n")
    with make_app(plugins=[my_plugin], root=tmp_path) as client:
        assert client.get("/api/v1/my_plugin").json() == {"uptime_seconds": 12.5}
"""

from __future__ import annotations

import secrets
import shutil
import string
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.settings import Settings

__all__ = ["make_app"]

_ALPHABET = string.ascii_lowercase + string.digits


def make_app(
    plugins: Sequence[ModuleType],
    root: Path,
    env: Mapping[str, str] | None = None,
    *,
    authenticated: bool = True,
) -> TestClient:
    """A TestClient of the daemon with only ``plugins`` loaded, reading the machine
    under ``root``; ``env`` holds ``RASPAPI_*`` settings and plugin options.

    Requests carry the admin key unless ``authenticated=False`` (the key is
    ``client.headers["access_token"]``). Use it as ``with make_app(...) as client``
    so the plugins' startup and shutdown hooks run. The state folder and key
    file live in a temporary folder removed with the client. A handler's
    exception answers 500, as in the daemon.
    """
    folder = Path(tempfile.mkdtemp(prefix="raspapi-test-"))
    key = "".join(secrets.choice(_ALPHABET) for _ in range(32))
    env_file = folder / ".env"
    env_file.write_text(f"RASPAP_API_KEY={key}\n")
    env_file.chmod(0o600)
    environ = {
        "RASPAPI_ROOT": str(root),
        "RASPAPI_STATE_DIR": str(folder / "state"),
        "RASPAPI_PLUGINS_DIR": str(folder / "plugins.d"),
        "RASPAPI_ACCESS_LOG": "off",
        **(env or {}),
        "RASPAPI_ENV_FILE": str(env_file),
    }
    settings = Settings.from_env(environ, cwd=folder).with_(entry_points=False)
    app = create_app(settings, plugins=plugins)
    headers = {"access_token": key} if authenticated else {}
    client = TestClient(app, raise_server_exceptions=False, headers=headers)
    weakref.finalize(client, shutil.rmtree, folder, True)
    return client
