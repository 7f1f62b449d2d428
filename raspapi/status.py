"""A plugin's health: ok, unavailable (its hardware or program is absent) or failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

State = Literal["ok", "unavailable", "failed", "disabled"]


@dataclass(frozen=True)
class Status:
    state: State
    reason: str | None = None
    #: Facts a plugin adds to ``/ready`` (interface names, versions, counts).
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, **details: Any) -> Status:
        return cls("ok", None, details)

    @classmethod
    def unavailable(cls, reason: str, **details: Any) -> Status:
        return cls("unavailable", reason, details)

    @classmethod
    def failed(cls, reason: str) -> Status:
        return cls("failed", reason)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "reason": self.reason}
        if self.details:
            out["details"] = self.details
        return out
