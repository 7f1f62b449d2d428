"""The README's plugin example works as written."""

from __future__ import annotations

import re
from pathlib import Path

from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient

README = Path(__file__).parents[1] / "README.md"


def test_readme_example_plugin_works(settings: Settings, make_client: MakeClient):
    match = re.search(r"<!-- example-plugin -->\n```python\n(.*?)```", README.read_text(), re.S)
    assert match, "README.md lost its example plugin"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 16
    settings.plugins_dir.mkdir()
    (settings.plugins_dir / "uptime.py").write_text(code)
    client = make_client()
    body = client.get("/api/v1/uptime", headers=AUTH).json()
    uptime = (settings.root / "proc" / "uptime").read_text().split()[0]
    assert body == {"uptime_seconds": float(uptime)}
    assert client.get("/ready", headers=AUTH).json()["plugins"]["uptime"]["state"] == "ok"


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "./dev run" in text and "./dev test" in text
    assert "./dev test" in (README.parent / ".ci" / "run").read_text()
