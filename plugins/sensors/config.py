"""The plugin's settings: ``RASPAPI_SENSORS_*`` from the ``.env`` file, overridden by
the process environment (as the core's own settings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: Value columns of the points table: the most fields a series (and a point) can have.
SLOTS = 16


@dataclass(frozen=True)
class Config:
    #: Points in one batch.
    max_batch: int = 1000
    #: Series at once (each is a few rows; points are bounded by retention).
    max_series: int = 1000
    #: Days a new series keeps its points, unless it says otherwise.
    retention_days: float = 365.0
    #: How far past the server's clock a point's time may be.
    max_future_seconds: float = 300.0
    #: Seconds between retention runs, and the points one run deletes at most.
    prune_interval: float = 60.0
    prune_batch: int = 20_000
    #: timeseries-api's read routes (GET /series, /series/{id}, /point/{id}) without a key.
    public_read: bool = False

    @property
    def max_body_bytes(self) -> int:
        # About 1.5 kB per point covers 16 long field names with 17-digit values.
        return 4096 + self.max_batch * 1536

    @classmethod
    def load(cls, option: Callable[[str], str | None]) -> Config:
        """From ``option`` (the core's ``Settings.option``: the environment, then the
        ``.env`` file); ValueError names a bad one."""

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = (option(f"RASPAPI_SENSORS_{name}") or "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = float("nan")
            if not low <= value <= high:
                raise ValueError(
                    f"RASPAPI_SENSORS_{name}={raw!r} is not a number from {low:g} to {high:g}"
                )
            return value

        def flag(name: str) -> bool:
            raw = (option(f"RASPAPI_SENSORS_{name}") or "").strip().lower()
            if raw in ("", "0", "false", "no", "off"):
                return False
            if raw in ("1", "true", "yes", "on"):
                return True
            raise ValueError(f"RASPAPI_SENSORS_{name}={raw[:32]!r} is not true or false")

        return cls(
            public_read=flag("PUBLIC_READ"),
            max_batch=int(number("MAX_BATCH", cls.max_batch, 1, 10_000)),
            max_series=int(number("MAX_SERIES", cls.max_series, 1, 100_000)),
            retention_days=number("RETENTION_DAYS", cls.retention_days, 0.01, 36500),
            max_future_seconds=number("MAX_FUTURE_SECONDS", cls.max_future_seconds, 0, 86400),
            prune_interval=number("PRUNE_INTERVAL", cls.prune_interval, 0.1, 86400),
        )
