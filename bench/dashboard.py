"""Benchmark: which queries of a Grafana dashboard answer from raspapi, beside node_exporter.

    .venv/bin/python -m bench.dashboard DASHBOARD.json [--wait 30] [--out FILE]

Made for Grafana's "Node Exporter Full" (grafana.com dashboard 1860; its JSON
is ``prometheus/node-exporter-full.json`` in github.com/rfmoz/grafana-dashboards,
not shipped here: pass its path). On this machine it starts, all on loopback
and in a temporary folder:

- ``raspapi serve`` on the real root (``/``), its metrics on a keyless
  listener (``RASPAPI_METRICS_ADDRESS``);
- Debian's ``prometheus-node-exporter`` with its default collectors;
- Debian's ``prometheus``, scraping both every 2 s (jobs ``raspapi`` and
  ``node``), its storage in the temporary folder.

After ``--wait`` seconds of scrapes, every query of every panel is evaluated
through Prometheus' HTTP API (an instant query), once per target, with the
dashboard's variables substituted (``$job``, ``$node`` = the target's
instance, ``$nodename``, ``$__rate_interval`` = 20s). A query "has data" when
it returns at least one series (or a scalar that is a number).

Targets (issue 15): on the rows "Quick CPU / Mem / Disk" and "Basic CPU / Mem
/ Net / Disk", every query with data from node_exporter has data from
raspapi; over the whole dashboard, raspapi answers at least 70% of the
queries node_exporter answers. Exit status 0 when both hold, 1 when one is
missed, 2 when the measurement could not be taken.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

OPEN_ROWS = ("Quick CPU / Mem / Disk", "Basic CPU / Mem / Net / Disk")
SHARE_TARGET = 0.70
SCRAPE_SECONDS = 2
RATE_INTERVAL = "20s"
ROOT = Path(__file__).resolve().parent.parent


class MeasureError(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise MeasureError(f"{url} did not answer within {seconds:.0f} s")


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(row, panel title, expression) of every panel target, rows in order."""

    def walk(panels: list[dict[str, Any]], row: str) -> Iterator[tuple[str, str, str]]:
        for panel in panels:
            if panel.get("type") == "row":
                row = str(panel.get("title", ""))
                yield from walk(panel.get("panels", []), row)
                continue
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if isinstance(expr, str) and expr.strip():
                    yield row, str(panel.get("title", "")), expr

    yield from walk(dashboard.get("panels", []), "")


def substitute(expr: str, job: str, instance: str, nodename: str) -> str:
    values = {
        "job": job,
        "node": instance,
        "nodename": nodename,
        "__rate_interval": RATE_INTERVAL,
        "__interval": f"{SCRAPE_SECONDS}s",
    }

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def has_data(prometheus: str, expr: str) -> bool:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        answer = json.loads(get(url))
    except (OSError, ValueError):
        return False
    if answer.get("status") != "success":
        return False
    data = answer["data"]
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return bool(data["result"])


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def measure(dashboard_path: Path, wait: float, say: Any) -> dict[str, Any]:
    dashboard = json.loads(dashboard_path.read_text(encoding="utf-8"))
    node_exporter = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    prometheus = shutil.which("prometheus")
    if node_exporter is None or prometheus is None:
        raise MeasureError("needs Debian's prometheus and prometheus-node-exporter (apt-get)")
    raspapi = ROOT / ".venv" / "bin" / "raspapi"
    work = Path(tempfile.mkdtemp(prefix="raspapi-dashboard-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = {name: free_port() for name in ("api", "metrics", "node", "prometheus")}
        env_file = work / "api.env"
        env_file.write_text(f"RASPAP_API_KEY={secrets.token_hex(16)}\n", encoding="ascii")
        env_file.chmod(0o600)
        env = {
            **os.environ,
            "RASPAPI_ENV_FILE": str(env_file),
            "RASPAPI_STATE_DIR": str(work / "state"),
            "RASPAPI_PLUGINS_DIR": str(work / "plugins.d"),
            "RASPAPI_PORT": str(ports["api"]),
            "RASPAPI_METRICS_ADDRESS": f"127.0.0.1:{ports['metrics']}",
        }
        procs.append(start([str(raspapi), "serve"], work / "raspapi.log", env))
        procs.append(
            start(
                [node_exporter, f"--web.listen-address=127.0.0.1:{ports['node']}"],
                work / "node_exporter.log",
            )
        )
        targets = {
            "raspapi": f"127.0.0.1:{ports['metrics']}",
            "node": f"127.0.0.1:{ports['node']}",
        }
        config = {
            "global": {"scrape_interval": f"{SCRAPE_SECONDS}s"},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in targets.items()
            ],
        }
        (work / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")
        procs.append(
            start(
                [
                    prometheus,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                ],
                work / "prometheus.log",
            )
        )
        api = f"http://127.0.0.1:{ports['prometheus']}"
        for target in targets.values():
            wait_for(f"http://{target}/metrics", 60)
        wait_for(f"{api}/-/ready", 60)
        say(f"  scraping both every {SCRAPE_SECONDS} s for {wait:.0f} s...")
        time.sleep(wait)
        nodename = socket.gethostname()
        rows: dict[str, dict[str, int]] = {}
        missing: list[dict[str, str]] = []
        total = {"node": 0, "raspapi": 0, "both": 0, "queries": 0}
        for row, title, expr in queries(dashboard):
            found = {
                job: has_data(api, substitute(expr, job, target, nodename))
                for job, target in targets.items()
            }
            counts = rows.setdefault(row, {"queries": 0, "node": 0, "raspapi": 0, "both": 0})
            for bucket in (counts, total):
                bucket["queries"] += 1
                bucket["node"] += found["node"]
                bucket["raspapi"] += found["raspapi"]
                bucket["both"] += found["node"] and found["raspapi"]
            if found["node"] and not found["raspapi"]:
                missing.append({"row": row, "panel": title, "expr": expr})
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(work, ignore_errors=True)
    open_rows_ok = all(
        rows.get(row, {}).get("both", 0) == rows.get(row, {}).get("node", 0) for row in OPEN_ROWS
    )
    share = total["both"] / total["node"] if total["node"] else 0.0
    return {
        "dashboard": dashboard.get("title"),
        "dashboard_version": dashboard.get("version"),
        "totals": total,
        "share_of_node_exporter": round(share, 3),
        "rows": rows,
        "open_rows_complete": open_rows_ok,
        "missing": missing,
        "targets_met": open_rows_ok and share >= SHARE_TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("dashboard", type=Path, help="the dashboard's JSON file")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds of scrapes first")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        result = measure(args.dashboard, args.wait, say)
    except (MeasureError, OSError, ValueError) as exc:
        say(f"measurement failed: {exc}")
        return 2
    total = result["totals"]
    print(f"{result['dashboard']}: {total['queries']} queries")
    print("| row | queries | node_exporter | raspapi | both |")
    print("|---|---|---|---|---|")
    for row, counts in result["rows"].items():
        print(
            f"| {row} | {counts['queries']} | {counts['node']} | {counts['raspapi']} "
            f"| {counts['both']} |"
        )
    print(
        f"| **all** | {total['queries']} | {total['node']} | {total['raspapi']} | {total['both']} |"
    )
    print(
        f"raspapi answers {result['share_of_node_exporter']:.1%} of the queries node_exporter "
        f"answers (target {SHARE_TARGET:.0%}); open rows complete: {result['open_rows_complete']}"
    )
    for item in result["missing"]:
        print(f"  no data from raspapi: [{item['row']}] {item['panel']}: {item['expr'][:120]}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
