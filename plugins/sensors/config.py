"""The plugin's settings: ``RASPAPI_SENSORS_*`` from the ``.env`` file, overridden by
the process environment (as the core's own settings)."""

from __future__ import annotations

from dataclasses import dataclass

from raspapi.plugin import PluginContext

#: Value columns of the points table: the most fields a series (and a point) can have.
SLOTS = 16
#: Steps one query may answer.
MAX_STEPS = 10_000
#: Raw points per page of a JSON answer.
MAX_LIMIT = 10_000


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
    def load(cls, ctx: PluginContext) -> Config:
        """From the plugin's options (``ctx.option``: the environment, then the ``.env``
        file); OptionError names a bad one."""
        return cls(
            public_read=ctx.option("public_read", bool, cls.public_read),
            max_batch=ctx.option("max_batch", int, cls.max_batch, min=1, max=10_000),
            max_series=ctx.option("max_series", int, cls.max_series, min=1, max=100_000),
            retention_days=ctx.option(
                "retention_days", float, cls.retention_days, min=0.01, max=36500
            ),
            max_future_seconds=ctx.option(
                "max_future_seconds", float, cls.max_future_seconds, min=0, max=86400
            ),
            prune_interval=ctx.option(
                "prune_interval", float, cls.prune_interval, min=0.1, max=86400
            ),
        )
