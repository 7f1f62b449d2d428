"""WireGuard test helpers: a recording `wg`, a fake `systemctl`, real wireguard-go tunnels."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

WG_DIR = "etc/wireguard"


def fixture_key(root: Path, name: str) -> str:
    """A key from RaspAP's key files in the fixture (wg-server-public.key ...)."""
    return (root / WG_DIR / name).read_text().strip()


@dataclass
class Recorder:
    """A program placed in the fixture root's /usr/bin that logs its argv."""

    log: Path
    fail_flag: Path
    stdin_log: Path

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def fail(self, on: bool = True) -> None:
        if on:
            self.fail_flag.touch()
        else:
            self.fail_flag.unlink(missing_ok=True)


@dataclass
class FakeWg(Recorder):
    """``wg`` whose ``show all dump`` prints a file and whose ``set`` only records.

    Every other subcommand (genkey, pubkey, genpsk) runs the real ``wg``.
    """

    dump: Path = field(default=Path())
    delay: Path = field(default=Path())

    def set_dump(self, text: str) -> None:
        """What ``show all dump`` prints; ``"!message"`` makes it fail with that message."""
        self.dump.write_text(text)

    def slow(self, seconds: float) -> None:
        """Make ``show all dump`` take ``seconds`` (0: answer at once)."""
        self.delay.write_text(f"{seconds}\n")


def _script(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def expose_userspace_interface(root: Path, name: str) -> None:
    """A socket entry at ``<root>/var/run/wireguard/<name>.sock``, where the plugin
    looks for userspace interfaces (it runs ``wg`` only when one exists)."""
    folder = root / "var/run/wireguard"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.sock"
    if not path.exists():
        os.mknod(path, stat.S_IFSOCK | 0o600)


def install_fake_wg(root: Path, work: Path) -> FakeWg:
    """The recording ``wg``, with a userspace interface's socket under ``root`` so
    the plugin asks it (without one it never runs ``wg``)."""
    expose_userspace_interface(root, "wgfake")
    real = shutil.which("wg")
    if real is None:
        pytest.fail("wg (wireguard-tools) is needed to generate keys")
    work.mkdir(parents=True, exist_ok=True)
    fake = FakeWg(
        work / "wg.log", work / "wg.fail", work / "wg.stdin", work / "dump.txt", work / "delay"
    )
    _script(
        root / "usr/bin/wg",
        f"""printf '%s\\n' "$*" >> "{fake.log}"
if [ "$1 $2 $3" = "show all dump" ]; then
    [ -e "{fake.delay}" ] && sleep "$(cat "{fake.delay}")"
    if [ "$(head -c 1 "{fake.dump}" 2>/dev/null)" = "!" ]; then
        tail -c +2 "{fake.dump}" >&2
        exit 1
    fi
    [ -e "{fake.dump}" ] && cat "{fake.dump}"
    exit 0
fi
if [ "$1" = "set" ]; then
    cat >> "{fake.stdin_log}"
    if [ -e "{fake.fail_flag}" ]; then
        echo "Unable to modify interface: Operation not permitted" >&2
        exit 1
    fi
    exit 0
fi
exec "{real}" "$@"
""",
    )
    return fake


def install_fake_systemctl(root: Path, work: Path) -> Recorder:
    work.mkdir(parents=True, exist_ok=True)
    fake = Recorder(work / "systemctl.log", work / "systemctl.fail", work / "systemctl.stdin")
    _script(
        root / "usr/bin/systemctl",
        f"""printf '%s\\n' "$*" >> "{fake.log}"
if [ -e "{fake.fail_flag}" ]; then
    echo "Job for $5 failed because the control process exited with error code." >&2
    exit 1
fi
if [ "$1" = "show" ]; then
    printf 'LoadState=loaded\\nActiveState=active\\nSubState=exited\\n'
fi
exit 0
""",
    )
    return fake


# -- real WireGuard in user space ------------------------------------------------


def require_wireguard_go() -> None:
    """Skip where wireguard-go can't run; in CI (CI=true) fail instead, never skip."""
    missing = [p for p in ("wg", "wireguard-go", "ip") if shutil.which(p) is None]
    if not os.path.exists("/dev/net/tun"):
        missing.append("/dev/net/tun")
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        message = f"real WireGuard tests need {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def run(*args: str, input: str | None = None) -> str:
    done = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def genkey() -> tuple[str, str]:
    private = run("wg", "genkey").strip()
    return private, run("wg", "pubkey", input=private + "\n").strip()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Tunnel:
    name: str
    private_key: str
    public_key: str
    port: int
    address: str


class WireguardGo:
    """Starts wireguard-go interfaces and removes every one of them at the end."""

    def __init__(self, work: Path, root: Path | None = None) -> None:
        self.work = work
        #: A fixture root the daemon under test reads: each interface's socket
        #: is shown there too.
        self.root = root
        self.stack = ExitStack()
        self.prefix = f"rwgt{os.getpid() % 10000}"
        self.count = 0

    def start(self, address: str, private_key: str | None = None) -> Tunnel:
        name = f"{self.prefix}{chr(ord('a') + self.count)}"
        self.count += 1
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 - closed by the stack
        self.stack.callback(log.close)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WG_")}
        proc = subprocess.Popen(["wireguard-go", "-f", name], stdout=log, stderr=log, env=env)
        self.stack.callback(self._stop, name, proc)
        deadline = time.monotonic() + 10
        while not Path(f"/var/run/wireguard/{name}.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"wireguard-go {name} did not start")
            time.sleep(0.05)
        if self.root is not None:
            expose_userspace_interface(self.root, name)
        if private_key is None:
            private_key, public_key = genkey()
        else:
            public_key = run("wg", "pubkey", input=private_key + "\n").strip()
        key_file = self.work / f"{name}.key"
        key_file.write_text(private_key + "\n")
        key_file.chmod(0o600)
        port = free_udp_port()
        run("wg", "set", name, "private-key", str(key_file), "listen-port", str(port))
        run("ip", "address", "add", address, "dev", name)
        run("ip", "link", "set", name, "up")
        return Tunnel(name, private_key, public_key, port, address)

    @staticmethod
    def _stop(name: str, proc: subprocess.Popen[bytes]) -> None:
        subprocess.run(["ip", "link", "del", name], capture_output=True, check=False)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        Path(f"/var/run/wireguard/{name}.sock").unlink(missing_ok=True)

    def close(self) -> None:
        self.stack.close()


@contextmanager
def wireguard_go(work: Path, root: Path | None = None) -> Iterator[WireguardGo]:
    require_wireguard_go()
    work.mkdir(parents=True, exist_ok=True)
    tunnels = WireguardGo(work, root)
    try:
        yield tunnels
    finally:
        tunnels.close()


def link(a: Tunnel, b: Tunnel, allowed_ips: str) -> None:
    """Make ``b`` a peer of ``a`` reaching it on 127.0.0.1, with a 1 s keepalive."""
    run(
        "wg", "set", a.name, "peer", b.public_key,
        "endpoint", f"127.0.0.1:{b.port}", "allowed-ips", allowed_ips,
        "persistent-keepalive", "1",
    )  # fmt: skip
