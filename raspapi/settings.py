"""Settings: RaspAP's ``.env`` file, overridden by the process environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from dotenv import dotenv_values

from raspapi.http.errors import StartupError
from raspapi.http.ratelimit import DEFAULT_RATE_LIMITS, RateLimit, parse_rate_limits
from raspapi.http.switches import RouteSwitch, parse_disabled_routes

SYSTEM_CONFIG_DIR = Path("/etc/raspap/api")
SYSTEM_STATE_DIR = Path("/var/lib/raspapi")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class Settings(NamedTuple):
    """Everything the daemon is configured with. See ``etc/raspapi.env``.

    A named tuple, not a dataclass: a frozen dataclass of this size compiles
    its methods for about 10 ms of every arm64 start (BENCHMARKS.md).
    """

    env_file: Path
    host: str = "127.0.0.1"
    port: int = 8081
    root: Path = Path("/")
    state_dir: Path = SYSTEM_STATE_DIR
    plugins_dir: Path = SYSTEM_CONFIG_DIR / "plugins.d"
    disable: frozenset[str] = frozenset()
    cache_ttl: float = 1.0
    log_level: str = "info"
    access_log: bool = True
    #: RASPAP_API_KEY from the process environment; it wins over the file.
    api_key_override: str | None = None
    #: Whether entry-point plugins of installed packages are loaded.
    entry_points: bool = True
    #: Every RASPAPI_* value of the .env file and the environment, for plugin
    #: options the core does not know (read them with ``option``).
    options: Mapping[str, str] = MappingProxyType({})
    #: Rate limits by route group (RASPAPI_RATE_LIMITS); a group absent is unlimited.
    rate_limits: tuple[RateLimit, ...] = DEFAULT_RATE_LIMITS
    #: Routes turned off (RASPAPI_DISABLE_ROUTES): they answer 503.
    disable_routes: tuple[RouteSwitch, ...] = ()
    #: Event streams: seconds between heartbeats, and between checks for changes.
    events_heartbeat: float = 15.0
    events_interval: float = 5.0
    #: The history sampler: seconds between samples, days kept at full
    #: resolution, days the 5-minute rollups are kept.
    history_interval: float = 10.0
    history_retention_days: float = 7.0
    history_downsampled_days: float = 90.0
    #: A second listener serving only /metrics, without a key (host, port).
    metrics_address: tuple[str, int] | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, cwd: Path | None = None
    ) -> Settings:
        """Read settings: defaults, then the ``.env`` file, then ``environ``.

        With no ``/etc/raspap/api`` folder (a development machine), the key
        file, state and drop-in folder live in ``./.raspapi`` instead.
        """
        env = dict(os.environ if environ is None else environ)
        local = (cwd or Path.cwd()) / ".raspapi"
        dev = not SYSTEM_CONFIG_DIR.is_dir()
        default_env_file = local / ".env" if dev else SYSTEM_CONFIG_DIR / ".env"
        env_file = Path(env.get("RASPAPI_ENV_FILE") or default_env_file)
        try:
            file_values = (
                {k: v for k, v in dotenv_values(env_file).items() if v is not None}
                if env_file.is_file()
                else {}
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(f"cannot read {env_file}: {exc}") from exc
        merged: dict[str, str] = {**file_values, **env}

        def get(name: str) -> str | None:
            value = merged.get(name)
            return value.strip() if value is not None else None

        kwargs: dict[str, Any] = {"env_file": env_file}
        if dev:
            kwargs["state_dir"] = local / "state"
            kwargs["plugins_dir"] = local / "plugins.d"
        if (v := get("RASPAPI_HOST")) is not None:
            kwargs["host"] = v or "127.0.0.1"
        if (v := get("RASPAPI_PORT")) is not None:
            kwargs["port"] = _int("RASPAPI_PORT", v, 1, 65535)
        if v := get("RASPAPI_ROOT"):
            kwargs["root"] = Path(v)
        if v := get("RASPAPI_STATE_DIR"):
            kwargs["state_dir"] = Path(v)
        if v := get("RASPAPI_PLUGINS_DIR"):
            kwargs["plugins_dir"] = Path(v)
        if (v := get("RASPAPI_DISABLE")) is not None:
            kwargs["disable"] = frozenset(n.strip() for n in v.split(",") if n.strip())
        if (v := get("RASPAPI_CACHE_TTL")) is not None:
            kwargs["cache_ttl"] = _float("RASPAPI_CACHE_TTL", v, 0.0, 3600.0)
        if (v := get("RASPAPI_LOG_LEVEL")) is not None:
            if v.lower() not in LOG_LEVELS:
                raise StartupError(f"RASPAPI_LOG_LEVEL={v!r} is not one of {', '.join(LOG_LEVELS)}")
            kwargs["log_level"] = v.lower()
        if (v := get("RASPAPI_ACCESS_LOG")) is not None:
            kwargs["access_log"] = _bool("RASPAPI_ACCESS_LOG", v)
        if (v := get("RASPAPI_HISTORY_INTERVAL")) is not None:
            kwargs["history_interval"] = _float("RASPAPI_HISTORY_INTERVAL", v, 0.1, 3600.0)
        if (v := get("RASPAPI_HISTORY_RETENTION_DAYS")) is not None:
            kwargs["history_retention_days"] = _float(
                "RASPAPI_HISTORY_RETENTION_DAYS", v, 0.001, 3650.0
            )
        if (v := get("RASPAPI_HISTORY_DOWNSAMPLED_DAYS")) is not None:
            kwargs["history_downsampled_days"] = _float(
                "RASPAPI_HISTORY_DOWNSAMPLED_DAYS", v, 0.001, 3650.0
            )
        if v := get("RASPAPI_METRICS_ADDRESS"):
            kwargs["metrics_address"] = _address("RASPAPI_METRICS_ADDRESS", v)
        if (v := get("RASPAPI_RATE_LIMITS")) is not None:
            kwargs["rate_limits"] = parse_rate_limits(v)
        if (v := get("RASPAPI_DISABLE_ROUTES")) is not None:
            kwargs["disable_routes"] = parse_disabled_routes(v)
        if (v := get("RASPAPI_EVENTS_HEARTBEAT")) is not None:
            kwargs["events_heartbeat"] = _float("RASPAPI_EVENTS_HEARTBEAT", v, 0.01, 3600.0)
        if (v := get("RASPAPI_EVENTS_INTERVAL")) is not None:
            kwargs["events_interval"] = _float("RASPAPI_EVENTS_INTERVAL", v, 0.01, 3600.0)
        # Only the process environment overrides the key: the file's own value
        # is re-read by the key watcher whenever the file changes.
        if env.get("RASPAP_API_KEY", "").strip():
            kwargs["api_key_override"] = env["RASPAP_API_KEY"].strip()
        kwargs["options"] = {k: v for k, v in merged.items() if k.startswith("RASPAPI_")}
        settings = cls(**kwargs)
        if settings.history_downsampled_days < settings.history_retention_days:
            raise StartupError(
                f"RASPAPI_HISTORY_DOWNSAMPLED_DAYS={settings.history_downsampled_days:g} is "
                f"shorter than RASPAPI_HISTORY_RETENTION_DAYS={settings.history_retention_days:g}"
            )
        if not settings.root.is_dir():
            raise StartupError(f"RASPAPI_ROOT={settings.root} is not a folder")
        return settings

    def option(self, name: str) -> str | None:
        """A plugin's own option (``RASPAPI_<PLUGIN>_<NAME>``): the process
        environment, else the .env file, else None."""
        if name in os.environ:
            return os.environ[name]
        return self.options.get(name)

    def with_(self, **changes: Any) -> Settings:
        return self._replace(**changes)

    def __repr__(self) -> str:
        # Never the key (RASPAP_API_KEY from the environment), nor every option.
        shown = (
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if name not in ("api_key_override", "options")
        )
        return f"Settings({', '.join(shown)})"


def _int(name: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise StartupError(f"{name}={value!r} is not a whole number") from None
    if not low <= number <= high:
        raise StartupError(f"{name}={number} is out of range {low}..{high}")
    return number


def _float(name: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise StartupError(f"{name}={value!r} is not a number") from None
    if not low <= number <= high:
        raise StartupError(f"{name}={number} is out of range {low}..{high}")
    return number


def _address(name: str, value: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; ``:port`` for every interface)."""
    host, sep, port = value.rpartition(":")
    if not sep:
        raise StartupError(f"{name}={value!r} is not host:port, e.g. 127.0.0.1:9101")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - ":port" asks for every interface
    return host, _int(name, port, 1, 65535)


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise StartupError(f"{name}={value!r} is not one of on/off, true/false, 1/0")
