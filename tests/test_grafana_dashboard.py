"""etc/grafana/raspapi.json against a real Prometheus: every query returns data.

Debian's ``prometheus`` scrapes the daemon's keyless metrics listener on
loopback (storage in tmp_path) while the daemon sees Wi-Fi stations (the
scripted hostapd control socket: hostapd with ``driver=none`` can hold no
station) and two real wireguard-go interfaces that shake hands. Then each
query of the dashboard, its variables substituted, goes through Prometheus'
HTTP API. Skips where prometheus or wireguard-go cannot run; fails instead in
CI (CI=true), which installs them and runs as root.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUTH, MakeClient
from tests.hostapd_peer import ScriptedHostapd, ctrl_path
from tests.wg_fixture import link, wireguard_go

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parent.parent / "etc" / "grafana" / "raspapi.json"
#: What Grafana would put in $__rate_interval for a 1 s scrape (4 scrapes).
RATE_INTERVAL = "4s"


def prometheus_program() -> str:
    found = shutil.which("prometheus")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("prometheus is not installed; CI must install it (apt-get install)")
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every target of the shipped dashboard."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                out.append((panel["title"], target["expr"]))

    walk(board["panels"])
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def query(api: str, expr: str) -> list[Any]:
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    result: list[Any] = body["data"]["result"]
    return [r for r in result if not math.isnan(float(r["value"][1]))]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Path, str, Callable[[], None]]]:
    """(where its scrape config goes, its API URL); started by the test once the
    target is known, stopped here whatever happens."""
    program = prometheus_program()
    config = tmp_path / "prometheus.yml"
    api_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
        procs.append(
            subprocess.Popen(
                [
                    program,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{api_port}",
                ],
                stdout=log,
                stderr=log,
            )
        )
        log.close()

    try:
        yield config, f"http://127.0.0.1:{api_port}", start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_every_query_of_the_shipped_dashboard_returns_data(
    make_client: MakeClient,
    root: Path,
    tmp_path: Path,
    prometheus: tuple[Path, str, Callable[[], None]],
) -> None:
    config, api, start = prometheus
    queries = dashboard_queries()
    assert len(queries) >= 20
    third = os.getpid() % 250
    with ScriptedHostapd(ctrl_path(root)) as ap, wireguard_go(tmp_path / "wg", root) as tunnels:
        ap.add_station("3c:22:fb:91:08:d4", signal=-52, rx_bytes=1000)
        ap.add_station("b8:27:eb:4f:12:a3", signal=-71, rx_bytes=2000)
        server = tunnels.start(f"10.215.{third}.1/24")
        other = tunnels.start(f"10.216.{third}.2/24")
        link(server, other, f"10.216.{third}.2/32")
        link(other, server, f"10.215.{third}.0/24")
        (root / "etc/wireguard" / f"{server.name}.conf").write_text(
            f"[Interface]\nAddress = 10.215.{third}.1/24\nListenPort = {server.port}\n"
            f"PrivateKey = {server.private_key}\n\n"
            f"[Peer]\n# Name = laptop\nPublicKey = {other.public_key}\n"
            f"AllowedIPs = 10.216.{third}.2/32\n"
        )
        client = make_client(metrics_address=("127.0.0.1", 0))
        port = client.app.state.exporter.listener_port  # type: ignore[attr-defined]
        assert port
        target = f"127.0.0.1:{port}"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "raspapi", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        start()
        values = {"$job": "raspapi", "$instance": target, "$__rate_interval": RATE_INTERVAL}
        missing: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            # Traffic for the request panels, and a client error for the error panel.
            assert client.get("/system", headers=AUTH).status_code == 200
            assert client.get("/api/v1/networking/nope", headers=AUTH).status_code == 404
            missing = []
            for title, expr in queries:
                for name, value in values.items():
                    expr = expr.replace(name, value)
                try:
                    found = query(api, expr)
                except OSError:  # Prometheus still starting
                    found = []
                if not found:
                    missing.append(f"{title}: {expr}")
            if not missing:
                break
            time.sleep(1)
        assert not missing, "no data for:\n" + "\n".join(missing)


def test_the_dashboard_is_what_grafana_imports() -> None:
    """The shape Grafana's import reads: unique panel ids, a data source variable every
    query uses, and variables for the job and instance every query filters on."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert board["title"] == "raspapi" and board["uid"]
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "job", "instance"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["refId"] and target["datasource"]["uid"] == "${datasource}"
            assert 'job="$job", instance="$instance"' in target["expr"], target["expr"]
