"""The history plugin's own Prometheus metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import History


def families(history: History) -> list[Any]:
    """Intervals written and failed, names kept, and how long the last write took."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families: list[Any] = [
        CounterMetricFamily(
            "raspapi_history_intervals_written",
            "Sampling intervals written to the history since start",
            value=history.written,
        ),
        CounterMetricFamily(
            "raspapi_history_intervals_failed",
            "Sampling intervals that could not be written since start",
            value=history.failures,
        ),
        GaugeMetricFamily(
            "raspapi_history_metrics",
            "Names with a history",
            value=len(history.db.ids) if history.db else 0,
        ),
    ]
    if history.last_write_seconds is not None:
        families.append(
            GaugeMetricFamily(
                "raspapi_history_write_seconds",
                "How long writing the last interval took",
                value=history.last_write_seconds,
            )
        )
    return families
