"""Benchmark building blocks: start a server process, load it with wrk, measure it.

Everything here talks to loopback only, and every wait is bounded in count
and in time. Scenarios (``bench/run.py``) combine these pieces.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURE_ROOT = REPO / "tests" / "fixtures" / "root"
#: Limits far above any load wrk makes: the limiter still counts every request
#: (its cost is measured) but never answers 429. Failed authentications keep
#: the default limit.
RATE_LIMITS = ";".join(
    f"{group}=999999999/second" for group in ("read", "control", "admin", "ingest", "open")
)
#: The admin key of every benchmarked daemon (32 characters of [0-9a-z]).
KEY = "benchkey0123456789abcdefghijklmn"
AUTH = {"access_token": KEY}
LOOPBACK = ("127.0.0.1", "::1")
HOST = "127.0.0.1"

#: The daemon's default history interval (``RASPAPI_HISTORY_INTERVAL``): the idle
#: and memory scenarios time their windows by it.
HISTORY_INTERVAL = 10.0
STARTUP_TIMEOUT = 30.0
STARTUP_POLL = 0.005
STOP_TIMEOUT = 10.0


class BenchError(RuntimeError):
    """The harness could not take a measurement (not a slow result: a broken one)."""


# -- /proc readings ------------------------------------------------------------


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    """Resident memory of ``pid`` (``VmRSS``; ``VmHWM`` for the peak) in bytes."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    for line in status.splitlines():
        if line.startswith(field_name + ":"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise BenchError(f"unexpected unit {unit!r} for {field_name}")
            return int(value) * 1024
    raise BenchError(f"no {field_name} in /proc/{pid}/status")


def cpu_seconds(pid: int, *, children: bool = True) -> float:
    """CPU time used by ``pid`` (utime + stime; with ``children``, also its reaped children's)."""
    raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    # The command name (field 2) may hold spaces or parentheses: split after its last ")".
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def idle_cpu_percent(pids: Sequence[int], seconds: float) -> list[float]:
    """Share of one core each of ``pids`` used over the same ``seconds`` of quiet."""
    start_cpu, start = [cpu_seconds(p) for p in pids], time.monotonic()
    time.sleep(seconds)
    end_cpu, wall = [cpu_seconds(p) for p in pids], time.monotonic() - start
    return [100.0 * (b - a) / wall for a, b in zip(start_cpu, end_cpu, strict=True)]


# -- HTTP over loopback ----------------------------------------------------------


def check_loopback(host: str) -> None:
    if host not in LOOPBACK:
        raise BenchError(f"the benchmark only talks to loopback, not {host!r}")


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now."""
    check_loopback(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(
    host: str,
    port: int,
    path: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
) -> tuple[int, bytes]:
    """One GET; returns the status and body. Raises OSError when nobody answers."""
    check_loopback(host)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read(1 << 20)
    finally:
        conn.close()


# -- server processes ------------------------------------------------------------


@dataclass
class ServerProcess:
    """A server started as a real process, stopped on exit.

    ``startup_seconds`` is the time from spawn to the first 200 on ``ready_path``.
    Subclasses decide what to run (``command``) and with what ``env``.
    """

    ready_path: str = "/health"
    ready_headers: Mapping[str, str] = field(default_factory=dict)
    host: str = HOST
    port: int = 0
    startup_timeout: float = STARTUP_TIMEOUT
    startup_seconds: float = 0.0
    workdir: Path = field(default_factory=Path)
    proc: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- what to run (subclasses) --

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return _clean_environ()

    def prepare(self) -> None:
        """Lay out files in ``self.workdir`` before the process starts."""

    # -- lifecycle --

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the server is not running")
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        return http_get(self.host, self.port, path, headers)

    def start(self) -> None:
        check_loopback(self.host)
        self._tmp = tempfile.TemporaryDirectory(prefix="raspapi-bench-")
        self.workdir = Path(self._tmp.name)
        if not self.port:
            self.port = free_port(self.host)
        self.prepare()
        command, env = self.command(), self.env()
        with self.log_path.open("wb") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                command,
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(started)

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        last_error = "no answer"
        for _ in range(int(self.startup_timeout / STARTUP_POLL) + 1):
            assert self.proc is not None
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise BenchError(f"server exited with {code} before answering:\n{self.log_tail()}")
            try:
                status, _ = self.get(self.ready_path, self.ready_headers)
            except OSError as exc:
                last_error = str(exc)
            else:
                if status == 200:
                    self.startup_seconds = time.perf_counter() - started
                    return
                last_error = f"HTTP {status}"
            if time.perf_counter() > deadline:
                break
            time.sleep(STARTUP_POLL)
        raise BenchError(
            f"no 200 on {self.ready_path} within {self.startup_timeout:.0f} s "
            f"({last_error}):\n{self.log_tail()}"
        )

    def stop(self) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL. Returns the exit code."""
        proc, self.proc = self.proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT)
            code = proc.returncode
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return code

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def peak_rss_bytes(self) -> int:
        return rss_bytes(self.pid, "VmHWM")

    def idle_cpu_percent(self, seconds: float) -> float:
        return idle_cpu_percent([self.pid], seconds)[0]

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _clean_environ() -> dict[str, str]:
    """The parent's environment without any raspapi setting or key in it, and
    with bytecode caching on, as installed (pip writes the bytecode, systemd sets
    no PYTHONDONTWRITEBYTECODE): a development shell's setting would make every
    start compile every module, inflating start-up and memory figures."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RASPAPI_")
        and k not in ("RASPAP_API_KEY", "JOURNAL_STREAM", "PYTHONDONTWRITEBYTECODE")
    }


def raspapi_command() -> list[str]:
    """``raspapi serve`` as installed next to this Python (as systemd runs it)."""
    script = Path(sys.executable).parent / "raspapi"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "serve"]
    return [sys.executable, "-m", "raspapi", "serve"]


@dataclass
class Daemon(ServerProcess):
    """``raspapi serve`` on a private copy of a fixture root, with key :data:`KEY`.

    ``prepare_root`` may change the copied root (add 200 stations, 500 peers...);
    ``plugin_files`` are copied into the drop-in folder; ``extra_env`` is added
    last (e.g. ``RASPAPI_DISABLE``). ``state_dir``: a state folder kept from one
    start to the next (as an installed daemon's is), instead of a fresh one.
    """

    fixture_root: Path = FIXTURE_ROOT
    prepare_root: Callable[[Path], None] | None = None
    plugin_files: Sequence[Path] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    state_dir: Path | None = None

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def env_file(self) -> Path:
        return self.workdir / "api" / ".env"

    def prepare(self) -> None:
        if self.fixture_root.is_dir():
            shutil.copytree(self.fixture_root, self.root, symlinks=True)
        else:
            self.root.mkdir()
        if self.prepare_root is not None:
            self.prepare_root(self.root)
        self.env_file.parent.mkdir()
        self.env_file.write_text(f"RASPAP_API_KEY={KEY}\n", encoding="ascii")
        self.env_file.chmod(0o600)
        plugins = self.workdir / "plugins.d"
        plugins.mkdir()
        for path in self.plugin_files:
            shutil.copy(path, plugins / path.name)

    def command(self) -> list[str]:
        return raspapi_command()

    def env(self) -> dict[str, str]:
        env = _clean_environ()
        env.update(
            RASPAPI_ROOT=str(self.root),
            RASPAPI_ENV_FILE=str(self.env_file),
            RASPAPI_STATE_DIR=str(self.state_dir or self.workdir / "state"),
            RASPAPI_PLUGINS_DIR=str(self.workdir / "plugins.d"),
            RASPAPI_HOST=self.host,
            RASPAPI_PORT=str(self.port),
            RASPAPI_ACCESS_LOG="off",
            RASPAPI_LOG_LEVEL="warning",
            RASPAPI_RATE_LIMITS=RATE_LIMITS,
        )
        env.update(self.extra_env)
        return env


@dataclass
class BareApp(ServerProcess):
    """``bench/bare_app.py``: one Starlette JSON endpoint under the same uvicorn options."""

    ready_path: str = "/system"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.bare_app",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]

    def env(self) -> dict[str, str]:
        env = _clean_environ()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env


# -- wrk -------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


@dataclass
class WrkResult:
    connections: int
    threads: int
    duration: float
    requests: int = 0
    requests_per_second: float = 0.0
    p50_ms: float = 0.0
    p75_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    #: Server CPU time per request (user + system): steadier than req/s on a busy machine.
    cpu_us_per_request: float | None = None
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["valid"] = self.valid
        return out


def _seconds(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str, connections: int, threads: int, duration: float) -> WrkResult:
    """Reads ``wrk --latency`` output. A run with errors is marked invalid, not fast."""
    result = WrkResult(connections, threads, duration)
    problems: list[str] = []
    for pct, name in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s*{pct}%\s+{_TIME}\s*$", output, re.M)
        if m is None:
            problems.append(f"no {pct}% latency in wrk output")
        else:
            setattr(result, name, round(_seconds(m[1], m[2]) * 1000, 4))
    m = re.search(rf"^\s*Latency\s+{_TIME}\s+{_TIME}\s+{_TIME}", output, re.M)
    if m is not None:
        result.max_ms = round(_seconds(m[5], m[6]) * 1000, 4)
    m = re.search(r"^\s*(\d+) requests in", output, re.M)
    result.requests = int(m[1]) if m else 0
    m = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if m is None:
        problems.append("no Requests/sec in wrk output")
    else:
        result.requests_per_second = float(m[1])
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result.non_2xx = int(m[1]) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m is not None:
        result.socket_errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    if result.requests == 0:
        problems.append("no request completed")
    if result.non_2xx:
        problems.append(f"{result.non_2xx} non-2xx responses")
    if errors := sum(result.socket_errors.values()):
        problems.append(f"{errors} socket errors {result.socket_errors}")
    result.problem = "; ".join(problems) or None
    return result


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not installed (Debian: apt-get install wrk)")
    return path


def wrk(
    url: str,
    connections: int,
    duration: float,
    threads: int = 1,
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
) -> WrkResult:
    """Runs ``wrk --latency`` against a loopback ``url`` and parses what it prints."""
    m = re.match(r"http://(\[[^\]]+\]|[^:/]+)", url)
    if m is None:
        raise BenchError(f"not an http URL: {url}")
    check_loopback(m[1].strip("[]"))
    threads = max(1, min(threads, connections))
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={max(1, round(timeout))}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration + timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        result = WrkResult(connections, threads, duration)
        result.problem = "wrk did not finish in time"
        return result
    result = parse_wrk(done.stdout, connections, threads, duration)
    if done.returncode != 0:
        problem = f"wrk exited with {done.returncode}: {done.stderr.strip()[:200]}"
        result.problem = f"{problem}; {result.problem}" if result.problem else problem
    return result


def load(
    server: ServerProcess,
    path: str,
    connections: int,
    duration: float,
    *,
    headers: Mapping[str, str] | None = None,
    threads: int = 1,
    warmup: float = 1.0,
) -> WrkResult:
    """A warm-up then a measured wrk run; invalid unless ``path`` answers 200 first."""
    status, _ = server.get(path, headers)
    if status != 200:
        result = WrkResult(connections, threads, duration)
        result.problem = f"GET {path} answered {status}, not 200"
        return result
    if warmup > 0:
        wrk(server.url(path), connections, warmup, threads, headers)
    cpu_before = cpu_seconds(server.pid, children=False)
    result = wrk(server.url(path), connections, duration, threads, headers)
    cpu_used = cpu_seconds(server.pid, children=False) - cpu_before
    if result.requests:
        result.cpu_us_per_request = round(cpu_used * 1e6 / result.requests, 1)
    return result


# -- the machine -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("raspapi", "starlette", "uvicorn", "uvloop", "httptools"):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "absent"
    try:
        wrk_version = subprocess.run(
            [wrk_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.splitlines()[0]
    except (BenchError, OSError, IndexError, subprocess.TimeoutExpired):
        wrk_version = "absent"
    return {
        "loadavg": os.getloadavg(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "packages": versions,
        "wrk": " ".join(wrk_version.split()[:2]),
    }
