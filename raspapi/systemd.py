"""systemd units through ``systemctl``: state and start/stop/restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from raspapi.runner import CommandError, CommandRunner

Action = Literal["start", "stop", "restart", "reload", "enable", "disable"]
_PROPERTIES = (
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "ActiveEnterTimestamp",
    "MemoryCurrent",
)


@dataclass(frozen=True)
class UnitState:
    unit: str
    load_state: str
    active_state: str
    sub_state: str
    unit_file_state: str
    main_pid: int | None
    #: As systemctl prints it (local time), or None.
    active_since: str | None
    memory_bytes: int | None

    @property
    def active(self) -> bool:
        return self.active_state == "active"

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "load_state": self.load_state,
            "active_state": self.active_state,
            "sub_state": self.sub_state,
            "unit_file_state": self.unit_file_state,
            "main_pid": self.main_pid,
            "active_since": self.active_since,
            "memory_bytes": self.memory_bytes,
        }


class Systemd:
    """Reads and drives units. Raises :class:`CommandError` when systemctl can't."""

    def __init__(self, runner: CommandRunner, *, timeout: float = 30.0) -> None:
        self.runner = runner
        self.timeout = timeout

    async def state(self, unit: str) -> UnitState:
        result = await self.runner.run(
            ["systemctl", "show", "--no-pager", "-p", ",".join(_PROPERTIES), "--", unit],
            timeout=10,
        )
        values = dict(line.split("=", 1) for line in result.text.splitlines() if "=" in line)

        def number(name: str) -> int | None:
            raw = values.get(name, "")
            return (
                int(raw)
                if raw.isdigit() and int(raw) > 0 and raw != "18446744073709551615"
                else None
            )

        return UnitState(
            unit=unit,
            load_state=values.get("LoadState", "unknown"),
            active_state=values.get("ActiveState", "unknown"),
            sub_state=values.get("SubState", "unknown"),
            unit_file_state=values.get("UnitFileState", "") or "unknown",
            main_pid=number("MainPID"),
            active_since=values.get("ActiveEnterTimestamp") or None,
            memory_bytes=number("MemoryCurrent"),
        )

    async def act(self, action: Action, unit: str) -> None:
        await self.runner.run(
            ["systemctl", action, "--no-ask-password", "--", unit], timeout=self.timeout
        )


__all__ = ["CommandError", "Systemd", "UnitState"]
