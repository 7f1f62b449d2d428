"""Stand-ins for systemctl and apt-get that installer.sh calls in tests.

Each records its calls (one JSON list per line) and keeps the machine's state
under the throwaway root, as the real ones would: ``enable`` makes the
``*.wants`` symlink, ``start`` really starts the unit's ExecStart from the
root's venv on a loopback port and waits for its READY=1 (Type=notify).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

SYSTEMCTL = r"""
import json, os, signal, socket, subprocess, sys, time
from pathlib import Path

root = Path(os.environ["STUB_ROOT"])
state = Path(os.environ["STUB_STATE"])
state.mkdir(exist_ok=True)
with open(state / "calls", "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\n")
words = [a for a in sys.argv[1:] if not a.startswith("-")]
verb, units = (words[0], words[1:]) if words else ("", [])
UNIT_DIRS = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")


def unit_file(unit):
    for folder in UNIT_DIRS:
        path = root / folder / unit
        if path.is_file():
            return path
    return None


def unit_keys(path):
    keys = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_of(unit):
    try:
        pid = int((state / f"{unit}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def stop(unit):
    pid = pid_of(unit)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    (state / f"{unit}.pid").unlink(missing_ok=True)


def start(unit):
    if pid_of(unit) is not None:
        return 0
    path = unit_file(unit)
    if path is None:
        print(f"Failed to start {unit}: Unit {unit} not found.", file=sys.stderr)
        return 5
    keys = unit_keys(path)
    starts = state / "starts"
    number = int(starts.read_text()) + 1 if starts.exists() else 1
    starts.write_text(str(number))
    log = open(state / f"{unit}.log", "ab")
    program, *args = keys["ExecStart"][0].split()
    broken = number <= int(os.environ.get("STUB_BROKEN_STARTS", "0"))
    if broken or not program.startswith("/opt/raspapi/"):
        # A start that never answers, or another program's unit (RaspAP's uvicorn).
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                stdout=log, stderr=log, start_new_session=True)
        (state / f"{unit}.pid").write_text(str(proc.pid))
        return 0
    for name in ("StateDirectory", "RuntimeDirectory"):
        base = "var/lib" if name == "StateDirectory" else "run"
        (root / base / keys[name][0]).mkdir(mode=0o700, parents=True, exist_ok=True)
    notify = state / "notify.sock"
    notify.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "NOTIFY_SOCKET": str(notify),
        "RASPAPI_ROOT": str(root),
        "RASPAPI_ENV_FILE": str(root / "etc/raspap/api/.env"),
        "RASPAPI_STATE_DIR": str(root / "var/lib/raspapi"),
        "RASPAPI_PLUGINS_DIR": str(root / "etc/raspap/api/plugins.d"),
        "RASPAPI_HOST": "127.0.0.1",
        "RUNTIME_DIRECTORY": str(root / "run/raspapi"),
        # /opt is read-only under ProtectSystem=strict: no bytecode written there.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    proc = subprocess.Popen([str(root) + program, *args], env=env,
                            cwd=str(root) + keys["WorkingDirectory"][0],
                            stdout=log, stderr=log, start_new_session=True)
    (state / f"{unit}.pid").write_text(str(proc.pid))
    sock.settimeout(0.2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if sock.recv(4096).startswith(b"READY=1"):
                return 0
        except TimeoutError:
            pass
    print(f"Job for {unit} failed because the control process exited with error code.",
          file=sys.stderr)
    stop(unit)
    return 1


def wants(unit):
    folder = root / "etc/systemd/system"
    found = folder.glob("*.wants") if folder.is_dir() else []
    return sorted(w / unit for w in found if os.path.lexists(w / unit))


code = 0
now = "--now" in sys.argv
for unit in units:
    if verb == "is-enabled":
        code = 0 if wants(unit) else 1
        if "--quiet" not in sys.argv:
            print("enabled" if code == 0 else "disabled")
    elif verb == "is-active":
        code = 0 if pid_of(unit) is not None else 3
        if "--quiet" not in sys.argv:
            print("active" if code == 0 else "inactive")
    elif verb == "enable":
        path = unit_file(unit)
        if path is None:
            print(f"Failed to enable unit: Unit file {unit} does not exist.", file=sys.stderr)
            sys.exit(1)
        for target in unit_keys(path).get("WantedBy", []):
            link = root / "etc/systemd/system" / f"{target}.wants" / unit
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to("/" + str(path.relative_to(root)))
        if now:
            code = start(unit)
    elif verb == "disable":
        for link in wants(unit):
            link.unlink()
        if now:
            stop(unit)
    elif verb == "start":
        code = start(unit)
    elif verb == "restart":
        stop(unit)
        code = start(unit)
    elif verb == "stop":
        stop(unit)
sys.exit(code)
"""

APT_GET = r"""
import json, os, sys
from pathlib import Path

state = Path(os.environ["STUB_STATE"])
state.mkdir(exist_ok=True)
with open(state / "apt-calls", "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\n")
if os.environ.get("STUB_APT_FAIL") and "install" in sys.argv:
    print("E: Unable to locate package python3-venv", file=sys.stderr)
    sys.exit(100)
if "install" in sys.argv:
    (state / "python3-venv-installed").touch()
"""

#: python3 as on a Debian without python3-venv: no ensurepip until apt-get ran.
PYTHON3_WITHOUT_VENV = """#!/bin/sh
if [ "$1" = -c ] && [ ! -e "$STUB_STATE/python3-venv-installed" ]; then
    case $2 in *ensurepip*) exit 1 ;; esac
fi
exec {python} "$@"
"""


def write_stubs(bin_dir: Path, *, python3_without_venv: bool = False) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, code in (("systemctl", SYSTEMCTL), ("apt-get", APT_GET)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{code.lstrip()}")
        path.chmod(0o755)
    if python3_without_venv:
        path = bin_dir / "python3"
        real = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        path.write_text(PYTHON3_WITHOUT_VENV.format(python=real))
        path.chmod(0o755)


def calls(state: Path, name: str = "calls") -> list[list[str]]:
    try:
        text = (state / name).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines()]


def changes(state: Path) -> list[list[str]]:
    """The systemctl calls that change something (not the is-* queries)."""
    return [c for c in calls(state) if c and c[0] not in ("is-active", "is-enabled")]


def daemon_pid(state: Path, unit: str = "restapi.service") -> int | None:
    try:
        pid = int((state / f"{unit}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def kill_all(state: Path) -> None:
    """Stop whatever the stub started (bounded)."""
    for pid_file in state.glob("*.pid"):
        try:
            pid = int(pid_file.read_text())
        except ValueError:
            continue
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
