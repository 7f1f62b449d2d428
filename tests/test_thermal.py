"""The thermal plugin: GET /api/v1/thermal, its status, and /system's systemTemperature."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient
from tests.schema_check import problems

NO_FLAGS = {
    "under_voltage": False,
    "arm_frequency_capped": False,
    "throttled": False,
    "soft_temperature_limit": False,
}
SYSFS = "sys/devices/platform/soc/soc:firmware/get_throttled"


def write(root: Path, path: str, text: str) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def fake_vcgencmd(root: Path, script: str) -> None:
    """An executable vcgencmd in the fixture's /usr/bin, which the runner finds first."""
    path = root / "usr/bin/vcgencmd"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def thermal(client: TestClient) -> dict[str, Any]:
    response = client.get("/api/v1/thermal", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_fixture_pi_sensors_and_sysfs_flags(make_client: MakeClient, root: Path):
    # vcgencmd cannot reach the firmware (the service user is not in the video group).
    fake_vcgencmd(root, 'echo "VCHI initialization failed" >&2\nexit 255\n')
    body = thermal(make_client())
    assert body == {
        "zones": [{"zone": "thermal_zone0", "label": "cpu-thermal", "temperature_celsius": 48.686}],
        "hwmon": [
            {
                "chip": "hwmon0",
                "name": "cpu_thermal",
                "label": "temp1",
                "temperature_celsius": 48.686,
            }
        ],
        "throttling": {
            "source": "sysfs",
            "raw": "0x50000",
            "now": NO_FLAGS,
            "since_boot": {
                "under_voltage": True,
                "arm_frequency_capped": False,
                "throttled": True,
                "soft_temperature_limit": False,
            },
        },
        "throttling_reason": None,
    }


def test_sysfs_flags_without_vcgencmd(make_client: MakeClient):
    if shutil.which("vcgencmd"):
        pytest.skip("this machine has a real vcgencmd, which the runner would find")
    assert thermal(make_client())["throttling"]["source"] == "sysfs"


@pytest.mark.parametrize(
    ("raw", "now", "since_boot"),
    [
        ("0x50005", ["under_voltage", "throttled"], ["under_voltage", "throttled"]),
        ("0x0", [], []),
        ("0x80008", ["soft_temperature_limit"], ["soft_temperature_limit"]),
        ("0x20002", ["arm_frequency_capped"], ["arm_frequency_capped"]),
        ("0xf000f", list(NO_FLAGS), list(NO_FLAGS)),
        ("0xe0000", [], ["arm_frequency_capped", "throttled", "soft_temperature_limit"]),
    ],
)
def test_flags_from_vcgencmd(
    make_client: MakeClient, root: Path, raw: str, now: list[str], since_boot: list[str]
):
    fake_vcgencmd(root, f'[ "$1" = get_throttled ] || exit 2\necho "throttled={raw}"\n')
    flags = thermal(make_client())["throttling"]
    assert flags == {
        "source": "vcgencmd",
        "raw": raw,
        "now": {name: name in now for name in NO_FLAGS},
        "since_boot": {name: name in since_boot for name in NO_FLAGS},
    }


def test_no_firmware_gives_null_flags_with_a_reason(make_client: MakeClient, root: Path):
    fake_vcgencmd(root, 'echo "VCHI initialization failed" >&2\nexit 255\n')
    (root / SYSFS).unlink()
    body = thermal(make_client())
    assert body["throttling"] is None
    reason = body["throttling_reason"]
    assert "VCHI initialization failed" in reason and "get_throttled" in reason
    assert body["zones"]  # the sensors are still there


def test_odd_vcgencmd_output_falls_back_to_sysfs(make_client: MakeClient, root: Path):
    fake_vcgencmd(root, 'echo "error=1 error_msg=\\"Command not registered\\""\n')
    flags = thermal(make_client())["throttling"]
    assert flags["source"] == "sysfs" and flags["raw"] == "0x50000"


def test_every_zone_and_hwmon_sensor_in_numeric_order(make_client: MakeClient, root: Path):
    write(root, "sys/class/thermal/thermal_zone10/type", "x86_pkg_temp\n")
    write(root, "sys/class/thermal/thermal_zone10/temp", "61000\n")
    write(root, "sys/class/thermal/thermal_zone2/type", "acpitz\n")
    write(root, "sys/class/thermal/thermal_zone2/temp", "not a number\n")  # a failing sensor
    write(root, "sys/class/thermal/cooling_device0/type", "Processor\n")
    write(root, "sys/class/hwmon/hwmon2/name", "coretemp\n")
    write(root, "sys/class/hwmon/hwmon2/temp1_label", "Package id 0\n")
    write(root, "sys/class/hwmon/hwmon2/temp1_input", "55000\n")
    write(root, "sys/class/hwmon/hwmon2/temp10_input", "-5500\n")
    write(root, "sys/class/hwmon/hwmon2/temp2_input", "53125\n")
    write(root, "sys/class/hwmon/hwmon2/temp2_crit", "100000\n")
    body = thermal(make_client())
    assert body["zones"] == [
        {"zone": "thermal_zone0", "label": "cpu-thermal", "temperature_celsius": 48.686},
        {"zone": "thermal_zone2", "label": "acpitz", "temperature_celsius": None},
        {"zone": "thermal_zone10", "label": "x86_pkg_temp", "temperature_celsius": 61.0},
    ]
    assert body["hwmon"] == [
        {"chip": "hwmon0", "name": "cpu_thermal", "label": "temp1", "temperature_celsius": 48.686},
        {
            "chip": "hwmon2",
            "name": "coretemp",
            "label": "Package id 0",
            "temperature_celsius": 55.0,
        },
        {"chip": "hwmon2", "name": "coretemp", "label": "temp2", "temperature_celsius": 53.125},
        {"chip": "hwmon2", "name": "coretemp", "label": "temp10", "temperature_celsius": -5.5},
    ]


def test_status_is_ok_with_sensor_counts(client: TestClient):
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["thermal"]
    assert plugin["state"] == "ok"
    assert plugin["details"] == {"zones": 1, "hwmon_sensors": 1}


def test_no_sensor_at_all_is_unavailable(make_client: MakeClient, root: Path):
    shutil.rmtree(root / "sys/class/thermal")
    shutil.rmtree(root / "sys/class/hwmon")
    client = make_client()
    response = client.get("/api/v1/thermal", headers=AUTH)
    assert response.status_code == 503
    assert "no thermal zone" in response.json()["detail"]
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["thermal"]
    assert plugin["state"] == "unavailable" and "hwmon" in plugin["reason"]
    assert client.get("/system", headers=AUTH).json()["systemTemperature"] == 0.0


@pytest.mark.parametrize(
    ("millidegrees", "celsius"),
    [("48686", 48.69), ("51234\n", 51.23), ("-5500", -5.5), ("70000", 70.0)],
)
def test_system_temperature_is_thermal_zone0(
    make_client: MakeClient, root: Path, millidegrees: str, celsius: float
):
    write(root, "sys/class/thermal/thermal_zone0/temp", millidegrees)
    body = make_client().get("/system", headers=AUTH).json()
    assert body["systemTemperature"] == celsius
    assert type(body["systemTemperature"]) is float


def test_system_temperature_zero_when_zone0_fails(make_client: MakeClient, root: Path):
    write(root, "sys/class/thermal/thermal_zone0/temp", "\n")
    body = make_client().get("/system", headers=AUTH).json()
    assert body["systemTemperature"] == 0.0


@pytest.mark.parametrize("firmware", [True, False])
def test_answer_fits_the_documented_schema(make_client: MakeClient, root: Path, firmware: bool):
    if not firmware:
        (root / SYSFS).unlink()
        fake_vcgencmd(root, "exit 1\n")
    client = make_client()
    op = client.get("/openapi.json").json()["paths"]["/api/v1/thermal"]["get"]
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    body = thermal(client)
    assert (body["throttling"] is None) is not firmware
    assert problems(body, schema) == []
    assert "503" in op["responses"]


def test_names_and_labels_are_read_once_while_the_sensors_stay(make_client: MakeClient, root: Path):
    """Each refresh reads the temperatures; a zone's type, a chip's name and a
    sensor's label only again when the sensor folders list other entries."""
    from raspapi.plugins.thermal import service as module

    client = make_client()
    service = client.app.state.runtime.manager.plugins["thermal"].ctx.service(module.Thermal)  # type: ignore[attr-defined]
    read: list[str] = []
    original = service._read

    def recording(path: str) -> str | None:
        read.append(path)
        text: str | None = original(path)
        return text

    service._read = recording
    service._listed = ()  # as on the first refresh (start-up may have read them)
    first = service.read_sensors()
    assert any(p.endswith("/type") for p in read) and any(p.endswith("/name") for p in read)
    read.clear()
    write(root, "sys/class/thermal/thermal_zone0/temp", "51000\n")
    second = service.read_sensors()
    assert read and all(p.endswith(("/temp", "_input")) for p in read), read
    assert second["zones"][0]["label"] == first["zones"][0]["label"] == "cpu-thermal"
    assert second["zones"][0]["temperature_celsius"] == 51.0
    # A chip comes: a number may now name another device, so every label is read again.
    write(root, "sys/class/hwmon/hwmon2/name", "usb_probe\n")
    write(root, "sys/class/hwmon/hwmon2/temp1_input", "20000\n")
    read.clear()
    third = service.read_sensors()
    assert any(p.endswith("thermal_zone0/type") for p in read)
    assert [s["name"] for s in third["hwmon"]] == ["cpu_thermal", "usb_probe"]
