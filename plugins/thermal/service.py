"""The thermal plugin's domain: sensors from sysfs, the firmware's throttling flags
(no Starlette). What it reads, and why in that order: the package's docstring.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable
from typing import Any

from raspapi.plugin import CommandError, PluginContext, Status

THERMAL = "/sys/class/thermal"
HWMON = "/sys/class/hwmon"
#: Where the Raspberry Pi firmware driver publishes get_throttled (Pi 5: soc@107c000000).
SYSFS_THROTTLED = (
    "/sys/devices/platform/soc/soc:firmware/get_throttled",
    "/sys/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled",
)
MAX_ENTRIES = 64
#: Bits of get_throttled: the flag now, and (shifted by 16) since boot.
FLAGS = {
    "under_voltage": 0,
    "arm_frequency_capped": 1,
    "throttled": 2,
    "soft_temperature_limit": 3,
}
_VCGENCMD = re.compile(r"throttled=(0x[0-9a-fA-F]+)")
#: How long a failed ``vcgencmd get_throttled`` is remembered before it is tried again.
VCGENCMD_RETRY_SECONDS = 3600.0
_VCGENCMD_FAILED = "vcgencmd_failed"
_NUMBERED = re.compile(r"([a-z_]+?)(\d+)")
_TEMP_INPUT = re.compile(r"temp(\d+)_input")


def _numbered(ctx: PluginContext, folder: str, prefix: str) -> list[str]:
    """``prefix<N>`` entries of ``folder`` in numeric order."""
    try:
        names = os.listdir(ctx.path(folder))
    except OSError:
        return []
    found = []
    for name in names:
        match = _NUMBERED.fullmatch(name)
        if match and match.group(1) == prefix:
            found.append((int(match.group(2)), name))
    return [name for _, name in sorted(found)[:MAX_ENTRIES]]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_")[:64] or "sensor"


def decode_throttled(value: int, source: str) -> dict[str, Any]:
    return {
        "source": source,
        "raw": f"0x{value:x}",
        "now": {name: bool(value >> bit & 1) for name, bit in FLAGS.items()},
        "since_boot": {name: bool(value >> (bit + 16) & 1) for name, bit in FLAGS.items()},
    }


class Thermal:
    """Temperatures from sysfs and the firmware's throttling flags (cached per refresh)."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        #: Names and labels by path (a zone's type, a chip's name, a sensor's
        #: label): the driver sets them once, so each refresh reads only the
        #: temperatures. Kept while the folders list the same entries.
        self._labels: dict[str, str | None] = {}
        self._listed: tuple[str, ...] = ()

    def _label(self, path: str) -> str | None:
        # Loaders may run in two threads at once: one dict operation each.
        if path in self._labels:
            return self._labels.get(path)
        if len(self._labels) >= 4 * MAX_ENTRIES:
            self._labels.clear()
        label = self._labels[path] = self._read(path)
        return label

    def _read(self, path: str) -> str | None:
        # Absent, or a sensor that fails to answer (EIO, ENODATA): None.
        text = self.ctx.read_text(path, limit=4096)
        return text.strip() if text is not None else None

    def _celsius(self, path: str) -> float | None:
        text = self._read(path)
        try:
            return int(text) / 1000 if text is not None else None
        except ValueError:
            return None

    def read_sensors(self) -> dict[str, list[dict[str, Any]]]:
        """Every thermal zone and hwmon temperature (blocking: a cache loader runs it)."""
        ctx = self.ctx
        zone_names = _numbered(ctx, THERMAL, "thermal_zone")
        chips = _numbered(ctx, HWMON, "hwmon")
        listed = (*zone_names, "/", *chips)
        if listed != self._listed:
            # A sensor came or went (a USB chip): its number may name another now.
            self._labels.clear()
            self._listed = listed
        zones = [
            {
                "zone": zone,
                "label": self._label(f"{THERMAL}/{zone}/type") or zone,
                "temperature_celsius": self._celsius(f"{THERMAL}/{zone}/temp"),
            }
            for zone in zone_names
        ]
        hwmon: list[dict[str, Any]] = []
        for chip in chips:
            folder = f"{HWMON}/{chip}"
            try:
                entries = os.listdir(ctx.path(folder))
            except OSError:
                continue
            inputs = sorted(
                (int(m.group(1)), m.group(0))
                for m in (_TEMP_INPUT.fullmatch(e) for e in entries)
                if m
            )
            for number, name in inputs[:MAX_ENTRIES]:
                sensor = f"temp{number}"
                hwmon.append(
                    {
                        "chip": chip,
                        "name": self._label(f"{folder}/name") or chip,
                        "label": self._label(f"{folder}/{sensor}_label") or sensor,
                        "temperature_celsius": self._celsius(f"{folder}/{name}"),
                    }
                )
        return {"zones": zones, "hwmon": hwmon}

    async def read_throttling(self) -> tuple[dict[str, Any] | None, str | None]:
        """The decoded flags, or None and why not.

        A failed or missing ``vcgencmd`` (no /dev/vchiq access, no firmware
        service, not installed) is remembered for ``VCGENCMD_RETRY_SECONDS``: it
        is not looked for or started again on every refresh only to fail the
        same way, and sysfs answers meanwhile.
        """
        ctx = self.ctx
        problems: list[str] = []
        failed = self._vcgencmd_failed()
        if failed is not None:
            problems.append(failed)
        elif ctx.runner.which("vcgencmd") is not None:
            try:
                result = await ctx.runner.run(["vcgencmd", "get_throttled"], timeout=2)
            except CommandError as exc:
                problem = f"vcgencmd get_throttled failed ({exc.message})"
            else:
                match = _VCGENCMD.search(result.text)
                if match:
                    ctx.state.pop(_VCGENCMD_FAILED, None)
                    return decode_throttled(int(match.group(1), 16), "vcgencmd"), None
                problem = f"vcgencmd get_throttled printed {result.text.strip()[:80]!r}"
            ctx.state[_VCGENCMD_FAILED] = (time.monotonic(), problem)
            problems.append(problem)
        else:
            # Looked for again after VCGENCMD_RETRY_SECONDS, not on every refresh.
            ctx.state[_VCGENCMD_FAILED] = (time.monotonic(), "no vcgencmd")
            problems.append("no vcgencmd")
        return await asyncio.to_thread(self._from_sysfs, problems)

    def _vcgencmd_failed(self) -> str | None:
        """Why ``vcgencmd`` failed, while that is remembered; else None."""
        failed: tuple[float, str] | None = self.ctx.state.get(_VCGENCMD_FAILED)
        if failed is not None and time.monotonic() - failed[0] < VCGENCMD_RETRY_SECONDS:
            return failed[1]
        return None

    def _from_sysfs(self, problems: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        """The flags from the firmware driver's sysfs file (blocking)."""
        for path in SYSFS_THROTTLED:
            text = self._read(path)
            if text:
                try:
                    return decode_throttled(int(text, 16), "sysfs"), None
                except ValueError:
                    problems.append(f"{path} holds {text[:40]!r}")
        problems.append("no firmware get_throttled file in /sys (not a Raspberry Pi?)")
        return None, "; ".join(problems)

    async def sensors(self) -> dict[str, list[dict[str, Any]]]:
        return await self.ctx.cache.get("sensors", self.read_sensors)

    async def throttling(self) -> tuple[dict[str, Any] | None, str | None]:
        return await self.ctx.cache.get("throttling", self.read_throttling)

    async def report(self) -> dict[str, Any]:
        found, (flags, reason) = await asyncio.gather(self.sensors(), self.throttling())
        return {**found, "throttling": flags, "throttling_reason": reason}

    async def status(self) -> Status:
        found = await self.sensors()
        if not found["zones"] and not found["hwmon"]:
            return Status.unavailable(
                f"no thermal zone in {THERMAL} and no hwmon temperature sensor in {HWMON}"
            )
        return Status.ok(zones=len(found["zones"]), hwmon_sensors=len(found["hwmon"]))

    async def system_fields(self) -> dict[str, Any]:
        for zone in (await self.sensors())["zones"]:
            if zone["zone"] == "thermal_zone0" and zone["temperature_celsius"] is not None:
                return {"systemTemperature": round(zone["temperature_celsius"], 2)}
        return {}

    def read_samples(self) -> dict[str, float] | Awaitable[dict[str, float]]:
        """The samples, read now (blocking); or, when ``vcgencmd`` is to be tried
        (not known to fail), an awaitable that runs it on the loop."""
        failed = self._vcgencmd_failed()
        if failed is None:
            return self.samples()
        flags, _ = self._from_sysfs([failed])
        return _samples(self.read_sensors(), flags)

    async def samples(self) -> dict[str, float]:
        found, (flags, _) = await asyncio.gather(self.sensors(), self.throttling())
        return _samples(found, flags)

    async def metrics(self) -> list[Any]:
        """The families of the last refresh, served while the next one runs (within
        two cache periods, as the system, hostapd and wireguard plugins' are): a scrape
        does not wait for sysfs or ``vcgencmd`` once there are families, and gets the
        same objects until they change, which ``/metrics`` renders once."""
        families: list[Any] = await self.ctx.cache.get(
            "metrics", self._families, stale=2 * self.ctx.cache.ttl
        )
        return families

    async def _families(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        found, (flags, _) = await asyncio.gather(self.sensors(), self.throttling())
        zones = GaugeMetricFamily(
            "node_thermal_zone_temp", "Zone temperature in Celsius", labels=["type", "zone"]
        )
        for zone in found["zones"]:
            if zone["temperature_celsius"] is not None:
                number = zone["zone"].removeprefix("thermal_zone")
                zones.add_metric([zone["label"], number], zone["temperature_celsius"])
        hwmon = GaugeMetricFamily(
            "node_hwmon_temp_celsius",
            "Hardware monitor for temperature (input)",
            labels=["chip", "chip_name", "sensor"],
        )
        for sensor in found["hwmon"]:
            if sensor["temperature_celsius"] is not None:
                hwmon.add_metric(
                    [sensor["chip"], sensor["name"], sensor["label"]], sensor["temperature_celsius"]
                )
        families: list[Any] = [zones, hwmon]
        if flags is not None:
            for suffix, key, text in (
                ("", "now", "set now"),
                ("_since_boot", "since_boot", "set at some time since boot"),
            ):
                family = GaugeMetricFamily(
                    f"raspapi_throttled{suffix}",
                    f"1 when the Raspberry Pi firmware's throttling flag is {text}, else 0",
                    labels=["flag"],
                )
                for flag, on in flags[key].items():
                    family.add_metric([flag], 1 if on else 0)
                families.append(family)
        return families

    async def watch_throttling(self) -> None:
        """Publishes ``thermal.throttling`` (retained) when the firmware's flags change."""
        ctx = self.ctx
        flags, _ = await self.throttling()
        if flags is None or ctx.state.get("throttling_now") == flags["now"]:
            return
        ctx.state["throttling_now"] = flags["now"]
        data = {"now": flags["now"], "since_boot": flags["since_boot"], "raw": flags["raw"]}
        ctx.events.publish("thermal.throttling", data, retain=True)


def _samples(
    found: dict[str, list[dict[str, Any]]], flags: dict[str, Any] | None
) -> dict[str, float]:
    out: dict[str, float] = {}
    for zone in found["zones"]:
        if zone["temperature_celsius"] is not None:
            out[f"temperature.{zone['zone']}.celsius"] = zone["temperature_celsius"]
    for sensor in found["hwmon"]:
        if sensor["temperature_celsius"] is not None:
            name = f"temperature.{sensor['chip']}.{_slug(sensor['label'])}.celsius"
            out[name] = sensor["temperature_celsius"]
    if flags is not None:
        for flag, on in flags["now"].items():
            out[f"throttling.{flag}"] = 1.0 if on else 0.0
    return out
