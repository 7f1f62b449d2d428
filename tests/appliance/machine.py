"""A Debian bookworm machine with systemd as PID 1, booted in a container.

The tree comes from debootstrap (Debian's packages, the list below) and is
cached under /var/cache/raspapi-appliance/<arch>-<hash of what makes it>; the
first run on a machine builds it. Each session boots a copy of it with
``systemd-nspawn --private-network`` (so wg0 and friends never reach the host),
runs commands in it with ``nsenter``, and removes the copy at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
MIRROR = os.environ.get("RASPAPI_APPLIANCE_MIRROR", "http://deb.debian.org/debian")
CACHE = Path(os.environ.get("RASPAPI_APPLIANCE_CACHE", "/var/cache/raspapi-appliance"))
#: Debian packages inside the tree: systemd as PID 1, Python for the venv, and
#: what a RaspAP machine runs (hostapd, dnsmasq, WireGuard, OpenVPN).
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "curl",
    "iproute2",
    "ca-certificates",
    "procps",
    "hostapd",
    "dnsmasq",
    "wireguard-tools",
    "wireguard-go",
    "openvpn",
    "iptables",
    "kmod",
)
#: What the host needs, with the Debian package that has it.
HOST_PROGRAMS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "nsenter": "util-linux",
    "setpriv": "util-linux",
}
#: pip's platform tags of the container's Python (bookworm: CPython 3.11, glibc 2.36).
PLATFORMS = {
    "amd64": ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_28_aarch64"),
}
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = {"amd64": 120.0, "arm64": 600.0}


def host_arch() -> str:
    """Debian's name for this machine's architecture."""
    import platform

    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def require_host(arch: str) -> None:
    """Skip where the container can't run; in CI (CI=true) fail instead."""
    missing = [f"{p} ({pkg})" for p, pkg in HOST_PROGRAMS.items() if shutil.which(p) is None]
    if os.geteuid() != 0:
        missing.append("root")
    if arch != host_arch() and shutil.which("update-binfmts") is None:
        missing.append("update-binfmts (binfmt-support, qemu-user-static)")
    if missing:
        message = f"the appliance suite needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _run(args: Sequence[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def enable_emulation(arch: str) -> None:
    """binfmt_misc with qemu-user-static, so the host runs the tree's programs."""
    if arch == host_arch():
        return
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "status").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], 30)
    qemu = {"arm64": "qemu-aarch64"}[arch]
    if not (binfmt / qemu).exists():
        _run(["update-binfmts", "--enable", qemu], 30)


def base_tree(arch: str) -> Path:
    """The cached debootstrap tree of ``arch``, built on first use."""
    what = "\n".join([SUITE, arch, MIRROR, "minbase", *PACKAGES])
    tree = CACHE / f"{arch}-{hashlib.sha256(what.encode()).hexdigest()[:12]}"
    enable_emulation(arch)
    with _locked(tree.name):
        if (tree / ".raspapi-complete").exists():
            return tree
        partial = tree.with_name(tree.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _run(
            [
                "debootstrap", f"--arch={arch}", "--variant=minbase",
                f"--include={','.join(PACKAGES)}", SUITE, str(partial), MIRROR,
            ],
            3600,
        )  # fmt: skip
        (partial / ".raspapi-complete").write_text(what + "\n")
        shutil.rmtree(tree, ignore_errors=True)
        partial.rename(tree)
    return tree


def wheelhouse(arch: str, out: Path) -> Path:
    """raspapi's wheel built from the checkout, and its dependencies for the
    container's Python and ``arch`` (cached by pyproject.toml's hash)."""
    out.mkdir(parents=True, exist_ok=True)
    # Built from a copy: pip would leave build/ and *.egg-info in the checkout.
    src = out.parent / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("raspapi", "plugins", "webui", "systemd"):
        shutil.copytree(PROJECT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT / name, src / name)
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check",
         "-w", str(out), str(src)],
        600,
    )  # fmt: skip
    (wheel,) = out.glob("raspapi-*.whl")
    key = hashlib.sha256((PROJECT / "pyproject.toml").read_bytes()).hexdigest()[:12]
    deps = CACHE / f"wheels-{arch}-{key}"
    with _locked(deps.name):
        if not (deps / ".complete").exists():
            shutil.rmtree(deps, ignore_errors=True)
            platforms = [arg for p in PLATFORMS[arch] for arg in ("--platform", p)]
            _run(
                [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                 "-d", str(deps), "--only-binary=:all:", *platforms, "--python-version", "3.11",
                 "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none",
                 str(wheel)],
                900,
            )  # fmt: skip
            for own in deps.glob("raspapi-*.whl"):
                own.unlink()
            (deps / ".complete").touch()
    for dep in deps.glob("*.whl"):
        shutil.copy2(dep, out)
    return wheel


@dataclass
class Answer:
    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


class Machine:
    """A copy of the tree, booted; ``run`` executes in all its namespaces."""

    def __init__(self, arch: str, tree: Path) -> None:
        self.arch = arch
        self.tree = tree
        self.name = f"raspapi-appl-{arch}-{os.getpid()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1 = 0
        #: The container's init as the host sees it: (pid, start time).
        self._init: tuple[int, int] | None = None
        self.log = tree.parent / f"{tree.name}.console.log"

    # -- life ---------------------------------------------------------------------

    def boot(self) -> None:
        assert self.proc is None
        log = open(self.log, "ab")  # noqa: SIM115 - closed right after Popen
        try:
            # setpriv: if pytest dies without tearing down (SIGKILL, SIGTERM),
            # the kernel sends nspawn SIGTERM, which powers the container off.
            self.proc = subprocess.Popen(
                [
                    "setpriv", "--pdeathsig", "TERM", "--",
                    "systemd-nspawn", "--register=no", "--keep-unit", "--quiet",
                    f"--machine={self.name}", "--capability=CAP_NET_ADMIN",
                    "--bind=/dev/net/tun", "--private-network", "-b", "-D", str(self.tree),
                    "--console=passive",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + BOOT_TIMEOUT[self.arch]
        while not self.pid1:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the container did not start: {self.console()}")
            self.pid1 = _child_named(self.proc.pid, "systemd")
            time.sleep(0.1)
        started = _start_time(self.pid1)
        if started is not None:
            self._init = (self.pid1, started)
        state = ""
        while state not in ("running", "degraded"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"systemd did not finish booting ({state!r})")
            with contextlib.suppress(subprocess.TimeoutExpired):
                state = self.run(
                    ["systemctl", "is-system-running", "--wait"], check=False, timeout=left
                ).stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.5)

    def shutdown(self, timeout: float = 120) -> None:
        """Power the container off (SIGTERM to nspawn halts it cleanly), then make
        sure its init is gone: an arm64 container's systemd under qemu-user
        outlived nspawn once per suite, reparented to the host's init."""
        proc, init, self.proc, self.pid1, self._init = self.proc, self._init, None, 0, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        if init is not None:
            _end_init(*init)

    def restart(self) -> None:
        self.shutdown()
        self.boot()

    def console(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    # -- inside -------------------------------------------------------------------

    def path(self, path: str) -> Path:
        """A path of the container, seen from the host."""
        return self.tree / path.lstrip("/")

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 120,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` in the container with a clean environment."""
        assert self.pid1, "the container is not running"
        done = subprocess.run(
            ["nsenter", "-t", str(self.pid1), "-a", "--", "env", "-i", f"PATH={PATH}",
             "HOME=/root", "LANG=C.UTF-8", *args],
            input=input, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                f"{done.stderr[-3000:]}"
            )
        return done

    def sh(self, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-ec", script], **kw)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def key(self) -> str:
        for line in self.path("/etc/raspap/api/.env").read_text().splitlines():
            if line.startswith("RASPAP_API_KEY="):
                return line.split("=", 1)[1].strip()
        raise AssertionError("no RASPAP_API_KEY in .env")

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "",
        port: int = 8081,
        timeout: float = 60,
    ) -> Answer:
        """One HTTP request to the installed service, from inside the container.

        ``key=""`` is the admin key from .env; ``None`` sends none. The key and
        the body go to curl through its standard input and a file, not argv.
        """
        config = []
        if key is not None:
            config.append(f'header = "access_token: {key or self.key()}"')
        if body is not None:
            body_file = self.path("/root/.appliance-body.json")
            body_file.write_text(json.dumps(body))
            config += [
                'header = "Content-Type: application/json"',
                'data-binary = "@/root/.appliance-body.json"',
            ]
        done = self.run(
            ["curl", "-sS", "-K", "-", "-X", method, "-D", "/root/.appliance-headers",
             "-o", "/root/.appliance-answer", "-w", "%{http_code}", "--max-time", str(timeout),
             f"http://127.0.0.1:{port}{path}"],
            input="\n".join(config) + "\n", timeout=timeout + 10, check=False,
        )  # fmt: skip
        status = int(done.stdout or 0)
        headers: dict[str, str] = {}
        if status:
            raw = self.path("/root/.appliance-headers").read_text(errors="replace")
            for line in raw.splitlines()[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
        answer = self.path("/root/.appliance-answer")
        text = answer.read_text(errors="replace") if answer.exists() else ""
        for leftover in ("answer", "headers", "body.json"):
            self.path(f"/root/.appliance-{leftover}").unlink(missing_ok=True)
        return Answer(status, text, headers)

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g} s")
            time.sleep(0.5)


def _start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _end_init(pid: int, started: int) -> None:
    """SIGKILL the container's init (and with it its PID namespace) if it is
    still the process that booted, and wait up to 10 s for it to go."""
    if _start_time(pid) != started:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _start_time(pid) == started:
        if time.monotonic() > deadline:
            raise AssertionError(f"the container's init ({pid}) survived SIGKILL")
        time.sleep(0.1)


def _child_named(pid: int, comm: str, depth: int = 3) -> int:
    """The first descendant of ``pid`` (up to ``depth`` levels) running ``comm``."""
    try:
        kids = [
            int(k)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for k in (task / "children").read_text().split()
        ]
    except OSError:
        return 0
    for kid in kids:
        try:
            if Path(f"/proc/{kid}/comm").read_text().strip() == comm:
                return kid
        except OSError:
            continue
    if depth > 1:
        for kid in kids:
            found = _child_named(kid, comm, depth - 1)
            if found:
                return found
    return 0


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4] for line in fh if line.split()[4].startswith(str(path))]


@contextlib.contextmanager
def booted(arch: str, work: Path) -> Iterator[tuple[Machine, Path]]:
    """A fresh copy of the ``arch`` tree, booted, with a wheelhouse and the
    installer's files in /root/raspapi; everything removed at the end."""
    require_host(arch)
    base = base_tree(arch)
    house = wheelhouse(arch, work / "wheelhouse")
    tree = work / "tree"
    _run(["cp", "-a", "--reflink=auto", str(base), str(tree)], 900)
    machine = Machine(arch, tree)
    try:
        src = machine.path("/root/raspapi")
        src.mkdir(parents=True)
        for name in ("installer.sh", "pyproject.toml", "README.md"):
            shutil.copy2(PROJECT / name, src / name)
        shutil.copytree(PROJECT / "systemd", src / "systemd")
        fixture = PROJECT / "tests/fixtures/root/etc/openvpn/client"
        shutil.copytree(fixture, src / "openvpn", symlinks=True)
        shutil.copytree(work / "wheelhouse", machine.path("/root/wheelhouse"))
        machine.boot()
        yield machine, Path("/root/wheelhouse") / house.name
    finally:
        machine.shutdown()
        left = mounts_under(tree)
        shutil.rmtree(tree, ignore_errors=True)
        assert not left, f"mounts left behind: {left}"
