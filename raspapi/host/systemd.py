"""systemd units through ``systemctl``: state and start/stop/restart."""

from __future__ import annotations

from typing import Literal, NamedTuple

from raspapi.host.runner import CommandError, CommandFailed, CommandRunner

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


class UnitState(NamedTuple):
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
        (state,) = await self.states([unit])
        return state

    async def states(self, units: list[str]) -> list[UnitState]:
        """Several units' states from one ``systemctl show`` call."""
        if not units:
            return []
        result = await self.runner.run(
            ["systemctl", "show", "--no-pager", "-p", ",".join(_PROPERTIES), "--", *units],
            timeout=10,
        )
        blocks = result.text.strip("\n").split("\n\n")
        if len(blocks) != len(units):
            raise CommandError(["systemctl"], f"expected {len(units)} units, got {len(blocks)}")
        return [_parse(unit, block) for unit, block in zip(units, blocks, strict=True)]

    async def act(self, action: Action, unit: str, *, no_block: bool = False) -> None:
        """``systemctl <action> <unit>``; ``no_block`` returns once the job is
        queued (the daemon restarting itself still answers the request)."""
        argv = ["systemctl", action, "--no-ask-password"]
        if no_block:
            argv.append("--no-block")
        await self.runner.run([*argv, "--", unit], timeout=self.timeout)


def _parse(unit: str, block: str) -> UnitState:
    values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)

    def number(name: str) -> int | None:
        raw = values.get(name, "")
        # systemd prints 2**64-1 for "not set".
        if raw.isdigit() and 0 < int(raw) < 2**64 - 1:
            return int(raw)
        return None

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


def describe_failure(exc: CommandError) -> str:
    """systemctl's own words: it puts the reason first ("Job for x failed...")."""
    if isinstance(exc, CommandFailed):
        lines = [x.strip() for x in exc.stderr.decode(errors="replace").splitlines() if x.strip()]
        if lines:
            return f"systemctl exited with status {exc.returncode}: {' '.join(lines[:3])[:500]}"
    return str(exc)


__all__ = ["CommandError", "Systemd", "UnitState", "describe_failure"]
