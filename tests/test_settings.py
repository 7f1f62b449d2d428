"""Settings: defaults, the .env file, and the environment overriding it."""

from __future__ import annotations

from pathlib import Path

import pytest

from raspapi.http.errors import StartupError
from raspapi.settings import Settings


def test_environment_overrides_the_file(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("RASPAP_API_KEY=fromfile\nRASPAPI_PORT=9000\nRASPAPI_CACHE_TTL=2.5\n")
    settings = Settings.from_env(
        {
            "RASPAPI_ENV_FILE": str(env_file),
            "RASPAPI_PORT": "9100",
            "RASPAPI_ROOT": str(tmp_path),
            "RASPAPI_DISABLE": "thermal, dns,,",
            "RASPAPI_ACCESS_LOG": "off",
            "RASPAPI_LOG_LEVEL": "DEBUG",
        },
        cwd=tmp_path,
    )
    assert settings.port == 9100
    assert settings.cache_ttl == 2.5
    assert settings.root == tmp_path
    assert settings.disable == {"thermal", "dns"}
    assert settings.access_log is False
    assert settings.log_level == "debug"
    # The file's key is not an override: it is re-read whenever the file changes.
    assert settings.api_key_override is None


def test_key_from_the_environment_is_an_override(tmp_path: Path):
    settings = Settings.from_env(
        {"RASPAPI_ENV_FILE": str(tmp_path / ".env"), "RASPAP_API_KEY": "k" * 32}, cwd=tmp_path
    )
    assert settings.api_key_override == "k" * 32


def test_development_defaults(tmp_path: Path):
    if Path("/etc/raspap/api").is_dir():
        pytest.skip("this machine has a RaspAP install")
    settings = Settings.from_env({}, cwd=tmp_path)
    assert settings.env_file == tmp_path / ".raspapi" / ".env"
    assert settings.state_dir == tmp_path / ".raspapi" / "state"
    assert settings.plugins_dir == tmp_path / ".raspapi" / "plugins.d"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8081
    assert settings.root == Path("/")
    assert settings.cache_ttl == 1.0
    assert settings.access_log is True


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RASPAPI_PORT", "http", "RASPAPI_PORT='http' is not a whole number"),
        ("RASPAPI_PORT", "70000", "RASPAPI_PORT=70000 is out of range 1..65535"),
        ("RASPAPI_CACHE_TTL", "-1", "RASPAPI_CACHE_TTL=-1.0 is out of range"),
        ("RASPAPI_CACHE_TTL", "nan", "RASPAPI_CACHE_TTL=nan is out of range"),
        ("RASPAPI_LOG_LEVEL", "loud", "RASPAPI_LOG_LEVEL='loud' is not one of"),
        ("RASPAPI_ACCESS_LOG", "maybe", "RASPAPI_ACCESS_LOG='maybe' is not one of"),
        ("RASPAPI_ROOT", "/does/not/exist", "RASPAPI_ROOT=/does/not/exist is not a folder"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, name: str, value: str, message: str):
    with pytest.raises(StartupError, match=message.replace("(", r"\(").replace(".", r"\.")):
        Settings.from_env({"RASPAPI_ENV_FILE": str(tmp_path / ".env"), name: value}, cwd=tmp_path)


def test_plugin_options_come_from_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    env_file = tmp_path / ".env"
    env_file.write_text("RASPAPI_HOSTAPD_CONFIRM_SECONDS=30\nRASPAPI_SENSORS_MAX_BATCH=5\n")
    monkeypatch.delenv("RASPAPI_HOSTAPD_CONFIRM_SECONDS", raising=False)
    monkeypatch.setenv("RASPAPI_SENSORS_MAX_BATCH", "7")
    settings = Settings.from_env(
        {"RASPAPI_ENV_FILE": str(env_file), "RASPAPI_SENSORS_MAX_BATCH": "7"}, cwd=tmp_path
    )
    assert settings.option("RASPAPI_HOSTAPD_CONFIRM_SECONDS") == "30"
    assert settings.option("RASPAPI_SENSORS_MAX_BATCH") == "7"
    assert settings.option("RASPAPI_NOTHING") is None
    assert "RASPAP_API_KEY" not in settings.options


def test_the_settings_never_show_the_key_or_the_options(tmp_path: Path):
    """A settings object logged or printed in a traceback shows neither
    RASPAP_API_KEY from the environment nor the .env file's other values."""
    key = "k" * 32
    settings = Settings.from_env(
        {
            "RASPAPI_ENV_FILE": str(tmp_path / ".env"),
            "RASPAP_API_KEY": key,
            "RASPAPI_DDNS_PASSWORD": "hunter2",
        },
        cwd=tmp_path,
    )
    assert settings.api_key_override == key
    assert settings.option("RASPAPI_DDNS_PASSWORD") == "hunter2"
    for text in (repr(settings), str(settings), f"{settings}"):
        assert key not in text and "hunter2" not in text
        assert "port=8081" in text
    assert settings.with_(port=9).port == 9 and settings.port == 8081
