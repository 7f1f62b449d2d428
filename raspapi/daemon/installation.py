"""The installed service, as ``raspapi check`` reports it: unit, boot, venv, port.

Paths are those installer.sh writes, resolved under ``RASPAPI_ROOT`` like every
other system path, so tests check an install made in a throwaway root.
"""

from __future__ import annotations

import http.client
import json
import os
from dataclasses import dataclass
from pathlib import Path

from raspapi.settings import Settings

UNIT_NAME = "restapi.service"
#: Where systemd looks for the unit, in its order of precedence.
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
#: The symlink to the current virtual environment under /opt/raspapi.
VENV = "/opt/raspapi/venv"
#: What tells our unit from RaspAP's own: it runs a program of our venv.
OURS = f"ExecStart={VENV}/bin/"
_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 - compared, never bound


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str
    fix: str = ""


def check(settings: Settings, timeout: float = 3.0) -> list[Finding]:
    """Findings about the service install; a single "ok" when there is none."""
    root = settings.root
    unit = _unit_file(root)
    unit_text = _read(unit) if unit else ""
    ours = OURS in unit_text
    venv = _under(root, VENV)
    if not ours and not os.path.lexists(venv):
        note = "installer.sh installs it"
        if unit is not None:
            note = f"{unit} belongs to another program, such as RaspAP's own RestAPI"
        return [Finding(True, f"service: not installed as a service ({note})")]
    out: list[Finding] = []
    if unit is None or not ours:
        out.append(
            Finding(
                False,
                f"{venv} exists but no raspapi {UNIT_NAME} runs it",
                "run installer.sh again: it puts the unit back",
            )
        )
    else:
        out.append(Finding(True, f"unit {unit}"))
        wants = _wanted_by(root)
        if wants:
            out.append(Finding(True, f"enabled at boot ({', '.join(wants)})"))
        else:
            out.append(
                Finding(
                    False,
                    f"{UNIT_NAME} is not enabled: it will not start at boot",
                    f"systemctl enable --now {UNIT_NAME}",
                )
            )
    problem = _venv_problem(root, venv, unit_text if ours else "")
    if problem:
        out.append(Finding(False, f"venv {venv}: {problem}", "run installer.sh --upgrade"))
    else:
        out.append(Finding(True, f"venv {venv} intact (raspapi {_venv_version(venv)})"))
    out.append(_port(settings, _venv_version(venv), timeout))
    return out


def _unit_file(root: Path) -> Path | None:
    for folder in UNIT_DIRS:
        path = _under(root, f"{folder}/{UNIT_NAME}")
        if path.is_file():
            return path
    return None


def _wanted_by(root: Path) -> list[str]:
    """Targets whose ``.wants`` folder links the unit (the links may point
    outside ``root``, so only their presence counts)."""
    folder = _under(root, "/etc/systemd/system")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    return [
        name.removesuffix(".wants")
        for name in names
        if name.endswith(".wants") and os.path.lexists(folder / name / UNIT_NAME)
    ]


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _read(path: Path, limit: int = 65536) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _venv_problem(root: Path, venv: Path, unit_text: str) -> str | None:
    if not (venv / "pyvenv.cfg").is_file():
        return "missing (no pyvenv.cfg)"
    if not (venv / "bin" / "python").exists():
        return "its Python is gone (the system's Python was upgraded or removed)"
    if not list(venv.glob("lib/python3*/site-packages/raspapi/__init__.py")):
        return "the raspapi package is not installed in it"
    for line in unit_text.splitlines():
        if line.startswith("ExecStart="):
            program = line.removeprefix("ExecStart=").lstrip("-@:+!").split()[0]
            path = _under(root, program)
            if not os.access(path, os.X_OK):
                return f"{program} (the unit's ExecStart) is missing"
            first = _read(path, 512).partition("\n")[0]
            if first.startswith("#!"):
                interpreter = first[2:].strip().split(" ")[0]
                if not os.access(interpreter, os.X_OK):
                    return f"{program} names a Python that is gone ({interpreter})"
    return None


def _venv_version(venv: Path) -> str:
    for info in venv.glob("lib/python3*/site-packages/raspapi-*.dist-info"):
        return info.name.removeprefix("raspapi-").removesuffix(".dist-info")
    return "unknown"


def _port(settings: Settings, installed: str, timeout: float) -> Finding:
    host = "127.0.0.1" if settings.host in _WILDCARDS else settings.host
    port = settings.port
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read(4096)
    except ConnectionRefusedError:
        return Finding(True, f"port {port} is free ({UNIT_NAME} is not running)")
    except (OSError, http.client.HTTPException) as exc:
        return _taken(port, f"it does not answer HTTP ({exc})")
    finally:
        conn.close()
    try:
        health = json.loads(body) if response.status == 200 else None
    except ValueError:
        health = None
    if not isinstance(health, dict) or health.get("status") != "ok" or "version" not in health:
        return _taken(port, f"GET /health answers {response.status}, not raspapi's health")
    running = str(health["version"])
    if installed not in ("unknown", running):
        return Finding(
            False,
            f"port {port}: raspapi {running} runs, but the venv has raspapi {installed}",
            f"systemctl restart {UNIT_NAME}",
        )
    return Finding(True, f"port {port}: raspapi {running} answers")


def _taken(port: int, why: str) -> Finding:
    return Finding(
        False,
        f"port {port} is taken by another program: {why}",
        f"find it with `ss -ltnp 'sport = :{port}'` and stop it (RaspAP's old RestAPI?), "
        "or move raspapi with installer.sh --port N",
    )
