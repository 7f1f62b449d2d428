"""Benchmark: what the daemon costs on a Pi when nobody asks it anything (issue 16).

    .venv/bin/python -m bench.scenario_idle [--idle 30] [--startups 5] [--arm64] [--out FILE]
    .venv/bin/python -m bench.scenario_idle --compare-venv OTHER/.venv [--idle 60] [--windows 3]

1. **Idle**: ``raspapi serve`` with every built-in plugin and the history
   sampler at its default 10 s, no client connected (one ``GET /system``
   answers first, then silence). Windows start once the first two history
   intervals are over (``SETTLE``, 25 s): the first samples' one-off work
   is paid once a boot, not all day. Over three windows of ``--idle`` seconds:
   - CPU: utime + stime (+ reaped children) from ``/proc/<pid>/stat``, as a
     share of one core. Target: at most 0.05%. Those are clock ticks of 10 ms,
     so over 30 s the figure moves in steps of 0.033% (one tick passes, two
     fail); the threads' scheduler time (``/proc/<pid>/task/*/schedstat``, in
     nanoseconds) is reported beside it, exact.
   - wake-ups: ``strace -f -e trace=epoll_wait,epoll_pwait,futex`` attached
     to every thread; every ``epoll_*`` call counts as a wake-up (the issue's
     measure, judged against the target of at most 2 a second), and the
     calls with a non-zero timeout (the loop going to sleep, then woken) are
     reported beside them.
   - programs: ``strace -f -e trace=execve`` attached likewise; programs per
     sample is the count divided by the samples the window holds. Target: 0
     without WireGuard (the fixture machine has none).
   The wake-up and program windows are traced (ptrace slows the process),
   the CPU window is not. The daemon writes and reads its bytecode as an
   installed one does (``PYTHONDONTWRITEBYTECODE`` from a development shell
   is overridden by the harness): modules imported on the first sample
   would otherwise be compiled from source on every run.
2. **Imports**: the same daemon under ``PYTHONPROFILEIMPORTTIME=1`` until
   its first answer: the 10 slowest top-level imports (cumulative) and the
   sum of all imports' own time.
3. **Start-up**: exec to the first 200 of ``GET /system`` (with the key),
   raspapi against ``bench/bare_app.py`` (bare Starlette under the same
   uvicorn options), alternating, the median of ``--startups`` each.
   raspapi keeps its state folder between starts, as an installed daemon
   does: the first start (no plugin manifest yet, so every plugin loads
   before the first answer) is reported on its own, and the median is of
   the starts after it.
4. **arm64** (``--arm64``, root only): the same start-up comparison inside
   a Debian bookworm arm64 tree run through qemu-user (binfmt_misc). The
   tree is built once with debootstrap under
   ``/var/cache/raspapi-bench/arm64-<hash>`` and raspapi plus its
   dependencies are installed there from an arm64 wheelhouse downloaded on
   the host. Target: raspapi at most 1.3 times the bare app. With
   ``--arm64-compare DIR``, the raspapi built from ``DIR`` is started in the
   same rounds (installed beside the venv's, first on ``PYTHONPATH``).

5. **A/B** (``--compare-venv``, alone): this build and another one (a venv
   with its ``bin/raspapi``, e.g. a worktree of the branch point) run at the
   same time, and each one's scheduler CPU is taken over the same windows,
   so the load of a shared machine weighs on both alike.

Needs ``strace`` for the wake-up and program counts (reported as missing
otherwise). Exit status 0 when every target measured is met, 1 when one is
missed, 2 when a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.harness import (
    AUTH,
    HISTORY_INTERVAL,
    REPO,
    BareApp,
    BenchError,
    Daemon,
    ServerProcess,
    free_port,
    http_get,
    idle_cpu_percent,
)

IDLE_CPU_TARGET = 0.05  # % of a core
WAKEUPS_TARGET = 2.0  # event-loop wake-ups a second
PROGRAMS_TARGET = 0.0  # programs per sample, no WireGuard
ARM64_RATIO_TARGET = 1.3
STRACE_GRACE = 10.0

Say = Callable[[str], None]


# -- strace ------------------------------------------------------------------------


def strace_binary() -> str | None:
    return shutil.which("strace")


def _trace(pid: int, seconds: float, args: Sequence[str]) -> str:
    """Attach strace (every thread of ``pid``) for ``seconds``; its output."""
    strace = strace_binary()
    if strace is None:
        raise BenchError("strace is not installed (apt-get install strace)")
    with tempfile.NamedTemporaryFile("r", prefix="raspapi-strace-", suffix=".txt") as out:
        proc = subprocess.Popen(
            [strace, "-f", "-qq", "-o", out.name, *args, "-p", str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(seconds)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=STRACE_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=STRACE_GRACE)
            raise BenchError("strace did not stop") from None
        text = Path(out.name).read_text(encoding="utf-8", errors="replace")
    if proc.returncode not in (0, 130, -signal.SIGINT) and not text:
        raise BenchError(f"strace failed: {err.decode(errors='replace')[-500:]}")
    return text


_CALL = re.compile(r"^\d+\s+(?:[\d:.]+\s+)?(?:<\.\.\. )?(\w+)(\(| resumed>)")
_EPOLL_TIMEOUT = re.compile(r"\[[^\]]*\], \d+, (-?\d+)")


def parse_trace(text: str) -> dict[str, Any]:
    """Calls per syscall in ``strace -f`` output, and how many ``epoll_*`` calls
    had a timeout (the loop going to sleep) rather than 0 (a loop turn while
    callbacks are pending)."""
    calls: dict[str, int] = {}
    sleeping = 0
    for line in text.splitlines():
        match = _CALL.match(line)
        if match is None:
            continue
        name, how = match.groups()
        if how == "(":
            calls[name] = calls.get(name, 0) + 1
        if name.startswith("epoll") and "<unfinished" not in line:
            timeout = _EPOLL_TIMEOUT.search(line)
            if timeout is not None and int(timeout.group(1)) != 0:
                sleeping += 1
    return {"calls": calls, "epoll_sleeps": sleeping}


def syscall_counts(pid: int, seconds: float) -> dict[str, Any]:
    return parse_trace(
        _trace(pid, seconds, ["-e", "trace=epoll_wait,epoll_pwait,epoll_pwait2,futex"])
    )


_EXECVE = re.compile(r'execve\("([^"]*)"')


def programs_started(pid: int, seconds: float) -> list[str]:
    """The programs ``pid`` and its threads started (one entry per execve)."""
    text = _trace(pid, seconds, ["-e", "trace=execve", "-e", "signal=none"])
    return [m.group(1) for m in _EXECVE.finditer(text)]


# -- idle ------------------------------------------------------------------------------


def thread_cpu_ns(pid: int) -> tuple[int, frozenset[str]]:
    """Nanoseconds on a CPU of each thread of ``pid`` (``/proc/<pid>/task/*/schedstat``,
    first field), summed, and the threads summed."""
    total = 0
    seen: set[str] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text(encoding="ascii").split()[0])
        except (OSError, ValueError, IndexError):
            continue
        seen.add(task.name)
    return total, frozenset(seen)


def idle_cpu(pid: int, seconds: float) -> dict[str, Any]:
    """The CPU share over one window, two ways: utime + stime from ``/proc/<pid>/stat``
    (the kernel's clock ticks, 10 ms each: 0.033% steps over 30 s), and the threads'
    scheduler time in nanoseconds (exact; a thread born or gone within the window
    is left out, which ``threads_changed`` reports)."""
    start_ns, start_threads = thread_cpu_ns(pid)
    ticks = idle_cpu_percent([pid], seconds)[0]
    end_ns, end_threads = thread_cpu_ns(pid)
    return {
        "cpu_percent": ticks,
        "cpu_percent_ns": 100.0 * (end_ns - start_ns) / 1e9 / seconds,
        "threads_changed": start_threads != end_threads,
    }


#: Idle is what the daemon costs all day: windows start once the first two history
#: intervals are over (the first ends one to two intervals after start), so the
#: first samples' one-off work (their first imports, the first writes, thermal's
#: first look for vcgencmd) is not counted as idle.
SETTLE = 2 * HISTORY_INTERVAL + 5.0


def measure_idle(seconds: float, say: Say) -> dict[str, Any]:
    with Daemon(ready_path="/system", ready_headers=AUTH) as daemon:
        say(f"  settling for {SETTLE:g} s")
        time.sleep(SETTLE)
        say(f"  CPU over {seconds:g} s")
        result: dict[str, Any] = {"seconds": seconds, **idle_cpu(daemon.pid, seconds)}
        if strace_binary() is None:
            say("  strace is missing: no wake-up or program counts")
            return result
        say(f"  wake-ups over {seconds:g} s (strace -e epoll_pwait,futex)")
        traced = syscall_counts(daemon.pid, seconds)
        calls = traced["calls"]
        epoll = sum(n for name, n in calls.items() if name.startswith("epoll"))
        say(f"  programs over {seconds:g} s (strace -e execve)")
        programs = programs_started(daemon.pid, seconds)
        samples = seconds / HISTORY_INTERVAL
        result.update(
            syscalls=calls,
            wakeups_per_second=epoll / seconds,
            sleeps_per_second=traced["epoll_sleeps"] / seconds,
            futex_per_second=calls.get("futex", 0) / seconds,
            programs=programs,
            programs_per_sample=len(programs) / samples,
        )
        return result


@dataclass
class _OtherDaemon(Daemon):
    """The same daemon set-up, run from another build's venv (``--compare-venv``)."""

    venv: Path = Path("/nonexistent")

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "raspapi"), "serve"]


def measure_side_by_side(venv: Path, seconds: float, windows: int, say: Say) -> dict[str, Any]:
    """This build and the one in ``venv``, running at the same time (same load),
    each one's scheduler CPU over the same windows: a fair A/B on a shared machine."""
    with (
        Daemon(ready_path="/system", ready_headers=AUTH) as this,
        _OtherDaemon(ready_path="/system", ready_headers=AUTH, venv=venv) as other,
    ):
        say(f"  settling for {SETTLE:g} s")
        time.sleep(SETTLE)
        out: dict[str, list[float]] = {"this": [], "other": []}
        for i in range(windows):
            start = {
                name: thread_cpu_ns(d.pid)[0] for name, d in (("this", this), ("other", other))
            }
            time.sleep(seconds)
            for name, d in (("this", this), ("other", other)):
                used = thread_cpu_ns(d.pid)[0] - start[name]
                out[name].append(100.0 * used / 1e9 / seconds)
            say(
                f"  window {i + 1}/{windows}: this {out['this'][-1]:.4f}%,"
                f" {venv} {out['other'][-1]:.4f}%"
            )
        return {"venv": str(venv), "seconds": seconds, **out}


# -- imports --------------------------------------------------------------------------

_IMPORT = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def parse_importtime(text: str) -> dict[str, Any]:
    top: list[tuple[int, str]] = []
    own = 0
    for line in text.splitlines():
        match = _IMPORT.match(line)
        if not match:
            continue
        self_us, cumulative, _, name = match.groups()
        own += int(self_us)
        if "." not in name:  # a top-level package or module, where it was first imported
            top.append((int(cumulative), name))
    top.sort(reverse=True)
    return {
        "total_ms": own / 1000,
        "slowest": [{"module": name, "cumulative_ms": us / 1000} for us, name in top[:10]],
    }


def measure_imports() -> dict[str, Any]:
    daemon = Daemon(
        ready_path="/system",
        ready_headers=AUTH,
        extra_env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    with daemon:
        time.sleep(0.5)
        text = daemon.log_path.read_text(encoding="utf-8", errors="replace")
    return parse_importtime(text)


# -- start-up --------------------------------------------------------------------------


def measure_startup(runs: int, say: Say) -> dict[str, Any]:
    """raspapi and the bare app, alternating. raspapi keeps its state folder
    from one start to the next, as an installed daemon does: the first start
    (unmeasured in the median, reported as ``raspapi_first_seconds``) writes
    the plugin manifest the later ones load by (see raspapi/state/manifest.py)."""
    times: dict[str, list[float]] = {"raspapi": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="raspapi-bench-state-") as state:
        servers: tuple[tuple[str, Callable[[], ServerProcess]], ...] = (
            (
                "raspapi",
                lambda: Daemon(ready_path="/system", ready_headers=AUTH, state_dir=Path(state)),
            ),
            ("bare", BareApp),
        )
        first: dict[str, float] = {}
        for name, make in servers:  # one start each to write the bytecode
            with make() as server:
                first[name] = server.startup_seconds
        for i in range(runs):
            for name, make in servers:
                server = make()
                with server:
                    times[name].append(server.startup_seconds)
            say(
                f"  start {i + 1}/{runs}: raspapi {times['raspapi'][-1]:.3f} s,"
                f" bare {times['bare'][-1]:.3f} s"
            )
    result = _startup_result(times)
    result["raspapi_first_seconds"] = first["raspapi"]
    return result


def _startup_result(times: dict[str, list[float]]) -> dict[str, Any]:
    raspapi = statistics.median(times["raspapi"])
    bare = statistics.median(times["bare"])
    return {
        "raspapi_seconds": times["raspapi"],
        "bare_seconds": times["bare"],
        "raspapi_median": raspapi,
        "bare_median": bare,
        "ratio": raspapi / bare,
    }


# -- arm64 -------------------------------------------------------------------------------

ARM64_SUITE = "bookworm"
ARM64_INCLUDE = "python3,python3-venv,ca-certificates"
ARM64_CACHE = Path("/var/cache/raspapi-bench")
ARM64_PYTHON = "3.11"
ARM64_PLATFORM = "manylinux2014_aarch64"


def arm64_tree() -> Path:
    digest = hashlib.sha256(f"{ARM64_SUITE} minbase {ARM64_INCLUDE}".encode()).hexdigest()[:12]
    return ARM64_CACHE / f"arm64-{digest}"


def _run(command: Sequence[str], timeout: float, **kwargs: Any) -> None:
    proc = subprocess.run(command, capture_output=True, timeout=timeout, check=False, **kwargs)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).decode(errors="replace")[-1500:]
        raise BenchError(f"{' '.join(command[:3])} ... exited with {proc.returncode}:\n{tail}")


def _enable_binfmt() -> None:
    if not Path("/proc/sys/fs/binfmt_misc/status").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], 30)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        _run(["update-binfmts", "--enable", "qemu-aarch64"], 30)


def build_arm64_tree(say: Say) -> Path:
    """The bookworm arm64 tree (built once, ~15 minutes under emulation)."""
    tree = arm64_tree()
    _enable_binfmt()
    if (tree / "usr/bin/python3").exists():
        return tree
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    ARM64_CACHE.mkdir(parents=True, exist_ok=True)
    say(f"  debootstrap {ARM64_SUITE} arm64 into {partial} (once)")
    _run(
        [
            "debootstrap",
            "--arch=arm64",
            "--variant=minbase",
            f"--include={ARM64_INCLUDE}",
            ARM64_SUITE,
            str(partial),
        ],
        3600,
    )
    partial.rename(tree)
    return tree


def install_arm64(tree: Path, say: Say, source: Path = REPO) -> Path:
    """A venv in the tree with raspapi (from ``source``, this checkout by default)
    and its arm64 dependencies."""
    wheels = tree / "opt/wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip"]
    say("  wheel of this checkout")
    _run([*pip, "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], 600)
    say("  arm64 wheelhouse of the dependencies")
    _run(
        [
            *pip,
            "download",
            "-q",
            "--platform",
            ARM64_PLATFORM,
            "--only-binary=:all:",
            "--python-version",
            ARM64_PYTHON,
            "-d",
            str(wheels),
            *[str(p) for p in wheels.glob("raspapi-*.whl")],
        ],
        900,
    )
    venv = Path("/opt/raspapi-venv")
    if not (tree / venv.relative_to("/") / "bin/python").exists():
        say("  venv in the arm64 tree")
        _run(["chroot", str(tree), "python3", "-m", "venv", str(venv)], 900)
    say("  pip install in the arm64 tree (offline, from the wheelhouse)")
    _run(
        [
            "chroot",
            str(tree),
            f"{venv}/bin/pip",
            "install",
            "-q",
            "--no-index",
            "--force-reinstall",
            "--find-links=/opt/wheels",
            "raspapi",
        ],
        1800,
    )
    return venv


def in_tree(tree: Path, inner: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    """``inner`` run in ``tree`` with a clean environment (nothing of this shell's,
    such as PYTHONDONTWRITEBYTECODE, leaks in): ``PATH`` and ``env`` only."""
    settings = {"PATH": "/usr/bin:/bin", **(env or {})}
    return [
        "chroot",
        str(tree),
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in settings.items()),
        *inner,
    ]


@dataclass
class Chrooted(ServerProcess):
    """A server run inside the arm64 tree; ``inner`` is the command there."""

    tree: Path = Path("/")
    inner: list[str] = field(default_factory=list)
    inner_env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        return in_tree(self.tree, self.inner, self.inner_env)


def _arm64_servers(tree: Path, venv: Path, port: int) -> tuple[Chrooted, Chrooted]:
    state = tree / "var/tmp/raspapi-bench"
    shutil.rmtree(state, ignore_errors=True)
    (state / "api").mkdir(parents=True)
    shutil.copytree(REPO / "tests/fixtures/root", state / "root", symlinks=True)
    (state / "plugins.d").mkdir()
    env_file = state / "api/.env"
    env_file.write_text(f"RASPAP_API_KEY={AUTH['access_token']}\n", encoding="ascii")
    env_file.chmod(0o600)
    inside = Path("/") / state.relative_to(tree)
    raspapi = Chrooted(
        ready_path="/system",
        ready_headers=AUTH,
        port=port,
        startup_timeout=120.0,
        tree=tree,
        inner=[f"{venv}/bin/raspapi", "serve"],
        inner_env={
            "RASPAPI_ROOT": f"{inside}/root",
            "RASPAPI_ENV_FILE": f"{inside}/api/.env",
            "RASPAPI_STATE_DIR": f"{inside}/state",
            "RASPAPI_PLUGINS_DIR": f"{inside}/plugins.d",
            "RASPAPI_HOST": "127.0.0.1",
            "RASPAPI_PORT": str(port),
            "RASPAPI_ACCESS_LOG": "off",
            "RASPAPI_LOG_LEVEL": "warning",
        },
    )
    bare = Chrooted(
        ready_path="/system",
        port=port,
        startup_timeout=120.0,
        tree=tree,
        inner=[
            f"{venv}/bin/python",
            "-c",
            f"import runpy, sys; sys.argv[1:] = ['--host', '127.0.0.1', '--port', '{port}']; "
            "runpy.run_path('/opt/bare_app.py', run_name='__main__')",
        ],
    )
    shutil.copy(REPO / "bench/bare_app.py", tree / "opt/bare_app.py")
    return raspapi, bare


def install_arm64_compare(tree: Path, say: Say, source: Path) -> str:
    """Another raspapi (``source``, e.g. a worktree of the branch point) in
    the tree beside the venv's, for the venv's Python to run with it first on
    ``PYTHONPATH`` (the dependencies are the venv's). Returns that folder."""
    wheels = tree / "opt/compare-wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    say(f"  wheel of {source}")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        600,
    )
    site = "/opt/compare-site"
    shutil.rmtree(tree / site.lstrip("/"), ignore_errors=True)
    (wheel,) = wheels.glob("raspapi-*.whl")
    _run(
        [
            "chroot",
            str(tree),
            "/opt/raspapi-venv/bin/pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            site,
            f"/opt/compare-wheels/{wheel.name}",
        ],
        900,
    )
    return site


def measure_arm64(
    runs: int, say: Say, source: Path = REPO, compare: Path | None = None
) -> dict[str, Any]:
    """raspapi against the bare app in the arm64 tree, alternating; with
    ``compare``, that build too, in the same rounds (the machine's load
    then weighs on all three alike)."""
    if os.geteuid() != 0:
        raise BenchError("the arm64 scenario needs root (debootstrap, chroot, binfmt_misc)")
    tree = build_arm64_tree(say)
    venv = install_arm64(tree, say, source)
    times: dict[str, list[float]] = {"raspapi": [], "bare": []}
    # raspapi's state folder is kept from start to start, as an installed
    # daemon's is; the first start (fresh state, no plugin manifest yet) is
    # reported on its own and left out of the median.
    raspapi, bare = _arm64_servers(tree, venv, free_port())
    servers = [("raspapi", raspapi), ("bare", bare)]
    if compare is not None:
        site = install_arm64_compare(tree, say, compare)
        other = replace(
            raspapi,
            inner_env={
                **raspapi.inner_env,
                "PYTHONPATH": site,
                "RASPAPI_STATE_DIR": raspapi.inner_env["RASPAPI_STATE_DIR"] + "-compare",
            },
        )
        servers.insert(1, ("compare", other))
        times["compare"] = []
        with other:  # its bytecode, and its own first start
            pass
    with raspapi:
        first = raspapi.startup_seconds
    say(f"  arm64 first start (no manifest yet): raspapi {first:.2f} s")
    for i in range(runs):
        for name, server in servers:
            with server:
                times[name].append(server.startup_seconds)
                if name == "raspapi":
                    # /ready answers once every plugin has loaded: under qemu,
                    # with the host loaded, that can take well over the 2 s a
                    # plain GET is given.
                    status, _ = http_get(server.host, server.port, "/ready", timeout=60.0)
                    if status != 200:
                        raise BenchError(f"arm64 raspapi /ready answered {status}")
        say(
            f"  arm64 start {i + 1}/{runs}: "
            + ", ".join(f"{name} {values[-1]:.2f} s" for name, values in times.items())
        )
    result = _startup_result(times)
    result["raspapi_first_seconds"] = first
    if compare is not None:
        result["compare_seconds"] = times["compare"]
        result["compare_median"] = statistics.median(times["compare"])
        result["compare_ratio"] = result["compare_median"] / result["bare_median"]
    result["tree"] = str(tree)
    return result


# -- report --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--idle", type=float, default=30.0, help="seconds per idle window")
    parser.add_argument("--startups", type=int, default=5, help="start-up samples per server")
    parser.add_argument("--arm64", action="store_true", help="also the arm64 start-up (root)")
    parser.add_argument("--arm64-startups", type=int, default=3)
    parser.add_argument(
        "--arm64-source",
        type=Path,
        default=REPO,
        help="the raspapi source tree installed in the arm64 tree (default: this checkout)",
    )
    parser.add_argument(
        "--arm64-compare",
        type=Path,
        default=None,
        help="another raspapi source tree (e.g. a worktree of the branch point) started"
        " in the same arm64 rounds, for a side-by-side start-up figure",
    )
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument(
        "--compare-venv",
        type=Path,
        help="only an A/B of idle CPU: this build and the venv's (bin/raspapi), side by side",
    )
    parser.add_argument("--windows", type=int, default=3, help="windows for --compare-venv")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    figures: dict[str, Any] = {}
    verdicts: list[tuple[str, str, str, bool]] = []
    if args.compare_venv is not None:
        say("idle CPU, side by side")
        try:
            ab = measure_side_by_side(args.compare_venv, args.idle, args.windows, say)
        except BenchError as exc:
            say(f"cannot measure: {exc}")
            return 2
        for name in ("this", "other"):
            values = ab[name]
            print(f"{name}: median {statistics.median(values):.4f}% of a core, windows {values}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(ab, indent=2) + "\n", encoding="utf-8")
        return 0
    try:
        if not args.skip_idle:
            say("idle")
            idle = figures["idle"] = measure_idle(args.idle, say)
            verdicts.append(
                (
                    "idle CPU, share of a core",
                    f"{idle['cpu_percent']:.3f}% in clock ticks,"
                    f" {idle['cpu_percent_ns']:.4f}% in scheduler time"
                    + (" (threads changed)" if idle["threads_changed"] else ""),
                    f"<= {IDLE_CPU_TARGET}%",
                    idle["cpu_percent"] <= IDLE_CPU_TARGET,
                )
            )
            if "wakeups_per_second" in idle:
                verdicts.append(
                    (
                        "event-loop wake-ups a second",
                        f"{idle['wakeups_per_second']:.2f} epoll calls, of which"
                        f" {idle['sleeps_per_second']:.2f} with a timeout"
                        f" (futex {idle['futex_per_second']:.2f})",
                        f"<= {WAKEUPS_TARGET:g}",
                        idle["wakeups_per_second"] <= WAKEUPS_TARGET,
                    )
                )
                verdicts.append(
                    (
                        "programs per sample, no WireGuard",
                        f"{idle['programs_per_sample']:.2f} {sorted(set(idle['programs']))}",
                        f"<= {PROGRAMS_TARGET:g}",
                        idle["programs_per_sample"] <= PROGRAMS_TARGET,
                    )
                )
        say("start-up (x86)")
        startup = figures["startup"] = measure_startup(args.startups, say)
        say("imports")
        imports = figures["imports"] = measure_imports()
        verdicts.append(
            (
                "start-up vs bare Starlette (this machine)",
                f"{startup['raspapi_median']:.3f} s / {startup['bare_median']:.3f} s"
                f" = {startup['ratio']:.2f}"
                f" (first start, no manifest: {startup['raspapi_first_seconds']:.3f} s)",
                "(reported)",
                True,
            )
        )
        if args.arm64:
            say("start-up (arm64)")
            arm = figures["arm64"] = measure_arm64(
                args.arm64_startups, say, args.arm64_source, args.arm64_compare
            )
            verdicts.append(
                (
                    "start-up vs bare Starlette, arm64",
                    f"{arm['raspapi_median']:.2f} s / {arm['bare_median']:.2f} s"
                    f" = {arm['ratio']:.2f}"
                    f" (first start, no manifest: {arm['raspapi_first_seconds']:.2f} s)"
                    + (
                        f"; compared build {arm['compare_median']:.2f} s"
                        f" = {arm['compare_ratio']:.2f}"
                        if "compare_median" in arm
                        else ""
                    ),
                    f"<= {ARM64_RATIO_TARGET}",
                    arm["ratio"] <= ARM64_RATIO_TARGET,
                )
            )
    except BenchError as exc:
        say(f"cannot measure: {exc}")
        return 2

    print(f"slowest imports (cumulative), all imports {imports['total_ms']:.1f} ms:")
    for row in imports["slowest"]:
        print(f"  {row['cumulative_ms']:8.1f} ms  {row['module']}")
    print()
    for name, value, limit, ok in verdicts:
        print(f"{'pass' if ok else 'MISS'}  {name}: {value} (target {limit})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(ok for *_, ok in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
