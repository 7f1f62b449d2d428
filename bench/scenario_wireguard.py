"""Benchmark: ``GET /api/v1/wireguard`` with 500 peers on a real wireguard-go interface.

    sudo .venv/bin/python -m bench.scenario_wireguard [--quick] [--peers 500] [--out FILE]

The daemon runs as in the other scenarios (``raspapi serve`` on a copy of the
fixture root); a wireguard-go interface carries the peers (no handshakes
needed) and ``/etc/wireguard/<interface>.conf`` names them, so each refresh
merges 500 live peers with 500 config sections. A wrapper ``wg`` in the
root's ``/usr/bin`` (found first by the daemon's runner) counts the
``wg show all dump`` calls. Targets (issue 4): p50 at most 3 ms at 16
connections, and one ``wg show`` per cache refresh whatever the load.

Needs root, wireguard-go, wg, ip and /dev/net/tun; the interface is removed
at the end whatever happens. ``register(SCENARIOS)`` adds the same server to
``bench.run`` as scenario ``wireguard-500``.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import AUTH, BenchError, Daemon, load

PATH = "/api/v1/wireguard"
P50_TARGET_MS = 3.0


def _key() -> str:
    # wg accepts any 32 bytes as a peer's public key; no need to run wg genkey 500 times.
    return base64.b64encode(os.urandom(32)).decode()


def _run(*args: str, input: str | None = None) -> str:
    done = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def check_machine() -> None:
    missing = [p for p in ("wg", "wireguard-go", "ip") if shutil.which(p) is None]
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun")
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        raise BenchError(f"the wireguard scenario needs {', '.join(missing)}")


@dataclass
class WireguardDaemon(Daemon):
    """The daemon, plus a wireguard-go interface with ``peers`` peers and their config."""

    peers: int = 500
    ready_path: str = PATH
    ready_headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))
    interface: str = field(default_factory=lambda: f"rwgb{os.getpid() % 10000}")
    #: A load test is a runaway poller by design: no rate limits.
    extra_env: Mapping[str, str] = field(default_factory=lambda: {"RASPAPI_RATE_LIMITS": "off"})
    _wireguard_go: subprocess.Popen[bytes] | None = None

    @property
    def show_log(self) -> Path:
        return self.workdir / "wg-show.log"

    def show_calls(self) -> int:
        try:
            return len(self.show_log.read_bytes())
        except FileNotFoundError:
            return 0

    def prepare(self) -> None:
        check_machine()
        super().prepare()
        real = shutil.which("wg")
        wrapper = self.root / "usr/bin/wg"
        wrapper.parent.mkdir(parents=True, exist_ok=True)
        wrapper.write_text(
            "#!/bin/sh\n"
            f'[ "$1 $2 $3" = "show all dump" ] && printf . >> "{self.show_log}"\n'
            f'exec "{real}" "$@"\n'
        )
        wrapper.chmod(0o755)
        self._start_interface()

    def _start_interface(self) -> None:
        name = self.interface
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WG_")}
        log = (self.workdir / "wireguard-go.log").open("wb")
        self._wireguard_go = subprocess.Popen(
            ["wireguard-go", "-f", name], stdout=log, stderr=log, env=env
        )
        log.close()
        for _ in range(200):
            if Path(f"/var/run/wireguard/{name}.sock").exists():
                break
            if self._wireguard_go.poll() is not None:
                raise BenchError(f"wireguard-go {name} exited at start")
            time.sleep(0.05)
        else:
            raise BenchError(f"wireguard-go {name} did not start within 10 s")
        # The plugin runs `wg` only when it sees an interface under its root.
        sockets = self.root / "var/run/wireguard"
        sockets.mkdir(parents=True, exist_ok=True)
        os.mknod(sockets / f"{name}.sock", stat.S_IFSOCK | 0o600)
        private = _run("wg", "genkey").strip()
        server = ["[Interface]", f"PrivateKey = {private}", "ListenPort = 0", ""]
        conf = [
            "# benchmark: 500 peers",
            "[Interface]",
            "Address = 10.201.0.1/16",
            f"PrivateKey = {private}",
            "",
        ]
        for i in range(self.peers):
            key, address = _key(), f"10.201.{(i + 2) // 256}.{(i + 2) % 256}/32"
            server += ["[Peer]", f"PublicKey = {key}", f"AllowedIPs = {address}", ""]
            conf += ["[Peer]", f"# Name = device {i}", f"PublicKey = {key}"]
            conf += [f"AllowedIPs = {address}", ""]
        setconf = self.workdir / "setconf.conf"
        setconf.write_text("\n".join(server))
        setconf.chmod(0o600)
        _run("wg", "setconf", name, str(setconf))
        _run("ip", "link", "set", name, "up")
        target = self.root / "etc/wireguard" / f"{name}.conf"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(conf))
        target.chmod(0o600)

    def stop(self) -> int | None:
        try:
            return super().stop()
        finally:
            subprocess.run(["ip", "link", "del", self.interface], capture_output=True, check=False)
            proc, self._wireguard_go = self._wireguard_go, None
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            Path(f"/var/run/wireguard/{self.interface}.sock").unlink(missing_ok=True)


def register(scenarios: dict[str, Any]) -> None:
    """Adds ``wireguard-500`` to ``bench.run.SCENARIOS`` (not run by default)."""
    from bench.run import Scenario, Targets

    scenarios["wireguard-500"] = Scenario(
        name="wireguard-500",
        summary="raspapi GET /api/v1/wireguard, 500 peers on a wireguard-go interface",
        server=WireguardDaemon,
        path=PATH,
        headers=AUTH,
        baseline="bare",
        targets=Targets(max_rss_mb=45.0),
        default=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--quick", action="store_true", help="3 s per load")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    duration = 3.0 if args.quick else max(1.0, args.duration)
    connections = [int(c) for c in args.connections.split(",") if c.strip()]

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    verdicts: list[tuple[str, str, str, bool]] = []
    server = WireguardDaemon(peers=args.peers)
    with server:
        status, body = server.get(PATH, AUTH)
        answer = json.loads(body)
        mine = next(i for i in answer["interfaces"] if i["name"] == server.interface)
        if status != 200 or mine["peer_count"] != args.peers:
            raise BenchError(f"expected {args.peers} peers, got {mine['peer_count']}")
        named = sum(1 for p in mine["peers"] if p["name"] and p["live"] and p["in_config"])
        say(
            f"{server.interface}: {mine['peer_count']} peers, {named} live and named; {len(body)} B"
        )
        for conns in connections:
            say(f"  {conns} connection(s), {duration:g} s")
            before, started = server.show_calls(), time.monotonic()
            run = load(server, PATH, conns, duration, headers=AUTH)
            calls, elapsed = server.show_calls() - before, time.monotonic() - started
            if not run.valid:
                raise BenchError(f"invalid run at {conns} connections: {run.problem}")
            # The warm-up second is inside `elapsed`; the cache refreshes once a second.
            allowed = math.ceil(elapsed) + 1
            rows.append(
                {
                    **run.as_dict(),
                    "wg_show_calls": calls,
                    "seconds": round(elapsed, 2),
                    "wg_show_allowed": allowed,
                }
            )
            verdicts.append(
                (f"wg show calls, {conns} conn", str(calls), f"<= {allowed}", calls <= allowed)
            )
            if conns == 16:
                verdicts.append(
                    (
                        "p50 latency, 16 conn",
                        f"{run.p50_ms:.2f} ms",
                        f"<= {P50_TARGET_MS:.2f} ms",
                        run.p50_ms <= P50_TARGET_MS,
                    )
                )
        rss = server.rss_bytes() / (1024 * 1024)

    print(f"GET {PATH}, {args.peers} peers, body {len(body)} bytes, RSS after load {rss:.1f} MB")
    print(f"{'conns':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'wg show':>8} {'seconds':>7}")
    for row in rows:
        print(
            f"{row['connections']:>5} {row['requests_per_second']:>8.0f} {row['p50_ms']:>7.2f} "
            f"{row['p99_ms']:>7.2f} {row['wg_show_calls']:>8} {row['seconds']:>7.1f}"
        )
    for name, measured, limit, ok in verdicts:
        print(f"{name:28} {measured:>10} {limit:>10}  {'PASS' if ok else 'MISS'}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "peers": args.peers,
                    "body_bytes": len(body),
                    "rss_mb": rss,
                    "runs": rows,
                    "targets": [
                        {"target": n, "measured": m, "limit": lim, "pass": ok}
                        for n, m, lim, ok in verdicts
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(ok for *_, ok in verdicts) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
