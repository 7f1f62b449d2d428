"""The system plugin: RaspAP's GET /system and GET /api/v1/system, against the fixture Pi 4."""

from __future__ import annotations

import collections
import math
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient
from tests.schema_check import problems

PLUGINS = Path(__file__).parents[1] / "plugins"
LEGACY_KEYS = [
    "hostname",
    "uptime",
    "systime",
    "usedMemory",
    "usedDisk",
    "processorCount",
    "LoadAvg1Min",
    "systemLoadPercentage",
    "systemTemperature",
    "hostapdStatus",
    "operatingSystem",
    "kernelVersion",
    "rpiRevision",
    "raspapVersion",
]
LEGACY_TYPES = {
    "usedMemory": float,
    "usedDisk": float,
    "processorCount": int,
    "LoadAvg1Min": float,
    "systemLoadPercentage": float,
    "systemTemperature": float,
    "hostapdStatus": int,
}
#: The fixture's cores: user nice system idle iowait irq softirq (steal guest guest_nice = 0).
FIXTURE_CORES = [
    [2500, 50, 1250, 20000, 200, 0, 25],
    [2600, 40, 1300, 19900, 180, 0, 30],
    [2450, 60, 1200, 20100, 220, 0, 20],
    [2450, 50, 1250, 20000, 200, 0, 25],
]
PAGE = os.sysconf("SC_PAGE_SIZE")
MEM_TOTAL = 3882924 * 1024


def other_plugins() -> frozenset[str]:
    """Every built-in plugin but system and thermal: disabled where exact values matter."""
    names = {p.stem for p in PLUGINS.glob("*.py")} | {
        p.name for p in PLUGINS.iterdir() if (p / "__init__.py").is_file()
    }
    return frozenset(n for n in names if not n.startswith("_")) - {"system", "thermal"}


def ours(make_client: MakeClient, **changes: Any) -> TestClient:
    disable = other_plugins() | changes.pop("disable", frozenset())
    return make_client(disable=disable, **changes)


def legacy(client: TestClient) -> dict[str, Any]:
    response = client.get("/system", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def overview(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/v1/system{query}", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def set_revision(root: Path, code: str | None) -> None:
    path = root / "proc/cpuinfo"
    text = re.sub(r"^Revision\t: .*\n", "", path.read_text(), flags=re.M)
    if code is not None:
        text += f"Revision\t: {code}\n"
    path.write_text(text)


def df_percent(path: Path) -> float:
    st = os.statvfs(path)
    used = st.f_blocks - st.f_bfree
    return float(math.ceil(used * 100 / (used + st.f_bavail)))


def write_stat(root: Path, cores: list[list[int]]) -> None:
    """/proc/stat with these per-core ticks; the ``cpu`` line is their sum."""
    text = (root / "proc/stat").read_text()
    total = [sum(core[i] for core in cores) for i in range(7)]
    lines = [f"cpu  {' '.join(map(str, total))} 0 0 0"]
    lines += [f"cpu{n} {' '.join(map(str, core))} 0 0 0" for n, core in enumerate(cores)]
    rest = [line for line in text.splitlines() if not line.startswith("cpu")]
    (root / "proc/stat").write_text("\n".join(lines + rest) + "\n")


def add(cores: list[list[int]], deltas: list[list[int]]) -> list[list[int]]:
    return [[a + b for a, b in zip(c, d, strict=True)] for c, d in zip(cores, deltas, strict=True)]


def bump_process(root: Path, pid: int, utime: int, stime: int) -> None:
    path = root / f"proc/{pid}/stat"
    head, _, rest = path.read_text().rpartition(")")
    fields = rest.split()
    fields[11] = str(int(fields[11]) + utime)
    fields[12] = str(int(fields[12]) + stime)
    path.write_text(f"{head}) {' '.join(fields)}\n")


# -- GET /system (RaspAP) -----------------------------------------------------------


def test_system_answers_raspap_keys_in_order_with_types_and_fixture_values(
    make_client: MakeClient, root: Path
):
    body = legacy(ours(make_client))
    assert list(body) == LEGACY_KEYS
    for key, value in body.items():
        assert type(value) is LEGACY_TYPES.get(key, str), key
    assert re.fullmatch(r"\w{3} [ \d]\d \w{3} \d\d:\d\d:\d\d \S+ \d{4}", body.pop("systime"))
    assert body.pop("usedDisk") == df_percent(root)
    assert body == {
        "hostname": "raspberrypi",
        "uptime": "up 23 hours, 3 minutes",
        # free -m: used = (3882924 - 3402728) kB // 1024 = 468 MiB of 3882924 // 1024 = 3791
        "usedMemory": 12.35,
        "processorCount": 4,
        "LoadAvg1Min": 0.42,
        "systemLoadPercentage": 10.5,
        "systemTemperature": 48.69,
        "hostapdStatus": 0,
        "operatingSystem": "Debian GNU/Linux 12 (bookworm)",
        "kernelVersion": "6.6.51+rpt-rpi-v8",
        "rpiRevision": "Pi 4 Model B Rev 1.4 (4 GB)",
        "raspapVersion": "3.5.5",
    }


def test_system_keeps_its_shape_with_every_plugin_loaded(client: TestClient):
    body = legacy(client)
    assert list(body) == LEGACY_KEYS
    for key, value in body.items():
        assert type(value) is LEGACY_TYPES.get(key, str), key


def test_system_needs_the_key_with_raspaps_answer(client: TestClient):
    response = client.get("/system")
    assert response.status_code == 403
    assert response.json() == {"detail": "403: Unauthorized"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        ("0.50", "up 0 minutes"),
        ("61.50", "up 1 minute"),
        ("3600.50", "up 1 hour, 0 minutes"),
        ("7260.50", "up 2 hours, 1 minute"),
        ("83000.50", "up 23 hours, 3 minutes"),
        ("90060.50", "up 1 day, 1 hour, 1 minute"),
        ("172920.50", "up 2 days, 2 minutes"),
        ("604800.50", "up 1 week, 0 minutes"),
        ("1209600.50", "up 2 weeks, 0 minutes"),
        ("31449600.50", "up 52 weeks, 0 minutes"),
        ("31536000.50", "up 1 year, 0 minutes"),
        ("36000000.50", "up 1 year, 7 weeks, 2 days, 16 hours, 0 minutes"),
        ("630720000.50", "up 20 years, 0 minutes"),
    ],
)
def test_uptime_reads_like_procps_uptime_p(
    make_client: MakeClient, root: Path, seconds: str, text: str
):
    write(root, "/proc/uptime", f"{seconds} 1234.56\n")
    assert legacy(ours(make_client))["uptime"] == text


@pytest.fixture
def timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A POSIX TZ needs no tz database: zone "ABC", three hours east of UTC.
    monkeypatch.setenv("TZ", "ABC-3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("timezone")
def test_systime_is_local_time_as_date_prints_it(make_client: MakeClient):
    client = ours(make_client)
    before = int(time.time())
    systime = legacy(client)["systime"]
    after = int(time.time())
    # The C library's strftime in the C locale gives the English names `date` prints.
    expected = {
        time.strftime("%a %e %b %H:%M:%S %Z %Y", time.localtime(t))
        for t in range(before, after + 1)
    }
    assert systime in expected
    assert " ABC " in systime


@pytest.mark.parametrize(
    ("tz", "epoch", "systime"),
    [
        ("CET-1CEST,M3.5.0,M10.5.0/3", 1710065471, "Sun 10 Mar 11:11:11 CET 2024"),
        ("CET-1CEST,M3.5.0,M10.5.0/3", 1722500000, "Thu  1 Aug 10:13:20 CEST 2024"),
        ("UTC0", 1709982671, "Sat  9 Mar 11:11:11 UTC 2024"),
    ],
)
def test_systime_at_a_fixed_instant(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, tz: str, epoch: int, systime: str
):
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    monkeypatch.setattr(
        sys.modules["raspapi.plugins.system.service"], "clock", lambda: float(epoch)
    )
    try:
        assert legacy(ours(make_client))["systime"] == systime
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("total_kb", "available_kb", "percent"),
    [
        (3882924, 3402728, 12.35),  # used 468 MiB, not 3791 - 3322 = 469
        (948304, 531104, 43.95),  # a Pi 3: 407 / 926
        (8245632, 4122816, 50.0),  # awk prints "50": an integral value
        (1024, 0, 100.0),
    ],
)
def test_used_memory_is_what_free_m_reports(
    make_client: MakeClient, root: Path, total_kb: int, available_kb: int, percent: float
):
    write(
        root,
        "/proc/meminfo",
        f"MemTotal: {total_kb} kB\nMemFree: 1000 kB\nMemAvailable: {available_kb} kB\n",
    )
    assert legacy(ours(make_client))["usedMemory"] == percent


def test_processor_count_and_load_percentage_follow_cpuinfo(make_client: MakeClient, root: Path):
    text = (root / "proc/cpuinfo").read_text()
    blocks = text.split("\n\n")
    write(root, "/proc/cpuinfo", "\n\n".join(blocks[:2] + blocks[4:]))
    write(root, "/proc/loadavg", "1.237 0.5 0.25 1/100 99\n")
    body = legacy(ours(make_client))
    assert body["processorCount"] == 2
    assert body["LoadAvg1Min"] == 1.24
    assert body["systemLoadPercentage"] == 62.0


def test_raspap_version_also_read_from_the_array_form(make_client: MakeClient, root: Path):
    write(
        root,
        "/var/www/html/includes/defaults.php",
        "<?php\n$defaults = [\n  'RASPI_BRAND_TEXT' => 'RaspAP',\n"
        "  'RASPI_VERSION' => '3.4.0',\n];\n",
    )
    assert legacy(ours(make_client))["raspapVersion"] == "3.4.0"


REVISIONS = [
    # RaspAP's own strings for the codes its table knows
    ("0002", "Model B Revision 1.0"),
    ("000e", "Model B Revision 2.0 (512 MB)"),
    ("a01041", "a01041"),
    ("9000c1", "PiZero W"),
    ("a020d3", "Pi 3 Model B+"),
    ("a02100", "Compute Module 3+"),
    ("c03111", "Model 4B Revision 1.1 (4 GB)"),
    ("a03140", "Compute Module 4 (1 GB)"),
    ("d03140", "Compute Module 4 (8 GB)"),
    ("c04170", "Pi 5 (4 GB)"),
    ("d04170", "Pi 5 (8 GB)"),
    # decoded from the bits
    ("C03114", "Pi 4 Model B Rev 1.4 (4 GB)"),
    ("d03115", "Pi 4 Model B Rev 1.5 (8 GB)"),
    ("902120", "Pi Zero 2 W Rev 1.0 (512 MB)"),
    ("c03130", "Pi 400 Rev 1.0 (4 GB)"),
    ("b03140", "Compute Module 4 (2 GB)"),
    ("a03150", "Pi Compute Module 4S Rev 1.0 (1 GB)"),
    ("b04170", "Pi 5 Model B Rev 1.0 (2 GB)"),
    ("e04171", "Pi 5 Model B Rev 1.1 (16 GB)"),
    ("d04180", "Pi Compute Module 5 Rev 1.0 (8 GB)"),
    ("e04180", "Pi Compute Module 5 Rev 1.0 (16 GB)"),
    ("d04190", "Pi 500 Rev 1.0 (8 GB)"),
    ("c041a0", "Pi Compute Module 5 Lite Rev 1.0 (4 GB)"),
    ("a020d4", "Pi 3 Model B Plus Rev 1.4 (1 GB)"),
    ("9020e1", "Pi 3 Model A Plus Rev 1.1 (512 MB)"),
    ("a22083", "Pi 3 Model B Rev 1.3 (1 GB)"),
    ("a22042", "Pi 2 Model B Rev 1.2 (1 GB)"),
    ("a01040", "Pi 2 Model B Rev 1.0 (1 GB)"),
    ("920093", "Pi Zero Rev 1.3 (512 MB)"),
    ("900061", "Pi Compute Module Rev 1.1 (512 MB)"),
    ("900021", "Pi Model A Plus Rev 1.1 (512 MB)"),
    ("900032", "Pi Model B Plus Rev 1.2 (512 MB)"),
    ("2a02082", "Pi 3 Model B Rev 1.2 (1 GB)"),  # warranty bit set: not RaspAP's a02082
    ("0014", "Pi Compute Module Rev 1.0 (512 MB)"),
    ("0015", "Pi Model A Plus Rev 1.1"),  # sold with 256 MB and with 512 MB
    ("1000002", "Pi Model B Rev 1.0 (256 MB)"),  # old style, overvolted
    ("a0fff0", "Pi (type 0xff) Rev 1.0 (1 GB)"),
    ("0001", "Unknown Device"),
    ("not-hex", "Unknown Device"),
    (None, "Unknown Device"),  # no Revision line: not a Pi
]


@pytest.mark.parametrize(("code", "name"), REVISIONS)
def test_rpi_revision_names_the_board(
    make_client: MakeClient, root: Path, code: str | None, name: str
):
    set_revision(root, code)
    client = ours(make_client)
    assert legacy(client)["rpiRevision"] == name
    assert overview(client)["board"]["name"] == name


@pytest.mark.parametrize(
    ("code", "fields"),
    [
        ("d04170", ("5", "1.0", 8192, "Sony UK", "BCM2712")),
        ("902120", ("Zero 2 W", "1.0", 512, "Sony UK", "BCM2837")),
        ("c03130", ("400", "1.0", 4096, "Sony UK", "BCM2711")),
        ("a03140", ("CM4", "1.0", 1024, "Sony UK", "BCM2711")),
        ("d04190", ("500", "1.0", 8192, "Sony UK", "BCM2712")),
        ("e04180", ("CM5", "1.0", 16384, "Sony UK", "BCM2712")),
        ("b041a0", ("CM5 Lite", "1.0", 2048, "Sony UK", "BCM2712")),
        ("a52082", ("3B", "1.2", 1024, "Stadium", "BCM2837")),
        ("a32082", ("3B", "1.2", 1024, "Sony Japan", "BCM2837")),
        ("a21041", ("2B", "1.1", 1024, "Embest", "BCM2836")),
        ("0005", ("B", "2.0", 256, "Qisda", "BCM2835")),
    ],
)
def test_board_fields_are_decoded(
    make_client: MakeClient, root: Path, code: str, fields: tuple[Any, ...]
):
    set_revision(root, code)
    board = overview(ours(make_client))["board"]
    assert board["revision_code"] == code
    assert (
        board["type"],
        board["revision"],
        board["memory_mb"],
        board["manufacturer"],
        board["processor"],
    ) == fields


def _remove(root: Path, *paths: str) -> None:
    for path in paths:
        target = root / path
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()


def test_missing_files_give_raspaps_empty_values(make_client: MakeClient, root: Path):
    _remove(root, "proc", "etc", "sys", "var", "run")
    body = legacy(ours(make_client))
    assert list(body) == LEGACY_KEYS
    body.pop("systime")
    assert body == {
        "hostname": "",
        "uptime": "",
        "usedMemory": 0.0,
        "usedDisk": df_percent(root),
        "processorCount": os.cpu_count(),
        "LoadAvg1Min": 0.0,
        "systemLoadPercentage": 0.0,
        "systemTemperature": 0.0,
        "hostapdStatus": 0,
        "operatingSystem": "",
        "kernelVersion": "",
        "rpiRevision": "Unknown Device",
        "raspapVersion": "",
    }


def test_missing_files_give_an_empty_overview(make_client: MakeClient, root: Path):
    _remove(root, "proc", "etc", "sys", "var", "run")
    body = overview(ours(make_client, cache_ttl=0))
    assert body["hostname"] == "" and body["kernel"] == ""
    assert body["os"] == {"pretty_name": "", "id": None, "version_id": None, "codename": None}
    assert body["board"]["model"] is None and body["board"]["name"] == "Unknown Device"
    assert body["uptime_seconds"] is None and body["boot_at"] is None
    assert body["cpu"]["percent"] is None and body["cpu"]["frequency"] == []
    assert body["memory"] == {
        "total_bytes": 0,
        "used_bytes": 0,
        "available_bytes": 0,
        "percent": 0.0,
    }
    assert body["disks"] == [] and body["users"] == []
    assert body["processes"] == {
        "count": 0,
        "interval_seconds": None,
        "top_cpu": [],
        "top_memory": [],
    }


def test_garbage_in_files_is_not_an_error(make_client: MakeClient, root: Path):
    for path in ("proc/uptime", "proc/loadavg", "proc/meminfo", "proc/stat", "proc/412/stat"):
        write(root, path, "garbage (x\n")
    write(root, "/proc/uptime", "nan 12.0\n")
    write(root, "/proc/loadavg", "inf 0.1 0.1 1/1 1\n")
    write(root, "/etc/os-release", 'PRETTY_NAME="unbalanced\n')
    write(root, "/run/utmp", "short")
    client = ours(make_client, cache_ttl=0)
    body = legacy(client)
    assert body["uptime"] == "" and body["LoadAvg1Min"] == 0.0 and body["usedMemory"] == 0.0
    assert body["operatingSystem"] == "unbalanced"
    view = overview(client)
    assert view["users"] == [] and view["processes"]["count"] == 6
    assert view["uptime_seconds"] is None and view["load"]["avg_1m"] == 0.0


def test_system_temperature_is_zero_without_the_thermal_plugin(make_client: MakeClient):
    assert legacy(ours(make_client, disable=frozenset({"thermal"})))["systemTemperature"] == 0.0


def test_contributed_fields_take_raspaps_types(
    make_client: MakeClient, settings: Settings, root: Path
):
    settings.plugins_dir.mkdir(parents=True)
    (settings.plugins_dir / "contrib.py").write_text(
        textwrap.dedent(
            """
            from raspapi import hookimpl

            @hookimpl
            def raspapi_system_fields(ctx):
                return {
                    "hostapdStatus": True,
                    "systemTemperature": "51.236",
                    "usedMemory": "lots",
                    "processorCount": 8.0,
                    "kernelVersion": 6,
                    "somethingElse": 1,
                }
            """
        )
    )
    body = legacy(ours(make_client, disable=frozenset({"thermal"})))
    assert list(body) == LEGACY_KEYS
    assert body["hostapdStatus"] == 1 and type(body["hostapdStatus"]) is int
    assert body["systemTemperature"] == 51.24
    assert body["usedMemory"] == 12.35  # not a number: ignored
    assert body["processorCount"] == 8 and type(body["processorCount"]) is int
    assert body["kernelVersion"] == "6.6.51+rpt-rpi-v8"  # not a string: ignored


# -- GET /api/v1/system ------------------------------------------------------------


def test_overview_reports_the_fixture_pi(make_client: MakeClient, root: Path):
    body = overview(ours(make_client))
    assert list(body) == [
        "hostname",
        "os",
        "kernel",
        "board",
        "uptime_seconds",
        "boot_at",
        "load",
        "cpu",
        "memory",
        "swap",
        "disks",
        "users",
        "processes",
    ]
    assert body["hostname"] == "raspberrypi"
    assert body["os"] == {
        "pretty_name": "Debian GNU/Linux 12 (bookworm)",
        "id": "debian",
        "version_id": "12",
        "codename": "bookworm",
    }
    assert body["kernel"] == "6.6.51+rpt-rpi-v8"
    assert body["board"] == {
        "model": "Raspberry Pi 4 Model B Rev 1.4",
        "name": "Pi 4 Model B Rev 1.4 (4 GB)",
        "revision_code": "c03114",
        "type": "4B",
        "revision": "1.4",
        "memory_mb": 4096,
        "manufacturer": "Sony UK",
        "processor": "BCM2711",
    }
    assert body["uptime_seconds"] == 83000.5
    assert body["boot_at"] == "2024-03-10T10:11:11Z"
    assert body["load"] == {"avg_1m": 0.42, "avg_5m": 0.35, "avg_15m": 0.3}
    assert body["cpu"]["count"] == 4
    assert body["cpu"]["frequency"] == [
        {"cpu": 0, "current_mhz": 1500.0, "min_mhz": 600.0, "max_mhz": 1800.0},
        {"cpu": 1, "current_mhz": 1800.0, "min_mhz": 600.0, "max_mhz": 1800.0},
        {"cpu": 2, "current_mhz": 1800.0, "min_mhz": 600.0, "max_mhz": 1800.0},
        {"cpu": 3, "current_mhz": 1800.0, "min_mhz": 600.0, "max_mhz": 1800.0},
    ]
    assert body["memory"] == {
        "total_bytes": MEM_TOTAL,
        "used_bytes": (3882924 - 3402728) * 1024,
        "available_bytes": 3402728 * 1024,
        "percent": 12.4,
    }
    assert body["swap"] == {
        "total_bytes": 102396 * 1024,
        "used_bytes": 4096 * 1024,
        "available_bytes": 98300 * 1024,
        "percent": 4.0,
    }
    assert body["users"] == [
        {
            "user": "pi",
            "terminal": "tty1",
            "host": None,
            "login_at": "2024-03-10T10:11:42Z",
            "pid": 1102,
        },
        {
            "user": "pi",
            "terminal": "pts/0",
            "host": "192.168.50.10",
            "login_at": "2024-03-10T11:00:00Z",
            "pid": 1733,
        },
    ]


def test_disks_are_the_real_mounts_present_under_the_root(make_client: MakeClient, root: Path):
    disks = overview(ours(make_client))["disks"]
    # tmpfs, proc... are not disks; /mnt/backup is not under the root; NFS is remote.
    assert [(d["mount_point"], d["device"], d["fs_type"], d["read_only"]) for d in disks] == [
        ("/", "/dev/mmcblk0p2", "ext4", False),
        ("/boot/firmware", "/dev/mmcblk0p1", "vfat", False),
        ("/media/pi/USB DISK", "/dev/sda1", "vfat", True),
    ]
    st = os.statvfs(root)
    first = disks[0]
    assert first["total_bytes"] == st.f_blocks * st.f_frsize
    assert first["used_bytes"] + first["available_bytes"] <= first["total_bytes"]
    assert 0.0 <= first["percent"] <= 100.0


def test_users_come_from_var_run_utmp_too(make_client: MakeClient, root: Path):
    (root / "var/run").mkdir(parents=True, exist_ok=True)
    (root / "run/utmp").rename(root / "var/run/utmp")
    client = ours(make_client, cache_ttl=0)
    assert [u["terminal"] for u in overview(client)["users"]] == ["tty1", "pts/0"]
    (root / "var/run/utmp").unlink()
    assert overview(client)["users"] == []


def test_cpu_percent_compares_two_snapshots(make_client: MakeClient, root: Path):
    client = ours(make_client, cache_ttl=0)
    # Nothing has moved since the startup snapshot: no figure yet.
    cpu = overview(client)["cpu"]
    assert (cpu["percent"], cpu["per_core_percent"], cpu["interval_seconds"]) == (None, [], None)

    deltas = [
        [300, 0, 100, 500, 100, 0, 0],  # 40 % busy (iowait counts as idle)
        [100, 0, 0, 900, 0, 0, 0],  # 10 %
        [1000, 0, 0, 0, 0, 0, 0],  # 100 %
        [0, 0, 0, 1000, 0, 0, 0],  # 0 %
    ]
    second = add(FIXTURE_CORES, deltas)
    write_stat(root, second)
    cpu = overview(client)["cpu"]
    assert cpu["percent"] == 37.5
    assert cpu["per_core_percent"] == [40.0, 10.0, 100.0, 0.0]
    assert cpu["interval_seconds"] > 0

    # No tick since: the last figures stand.
    assert overview(client)["cpu"]["percent"] == 37.5

    # The next figure is measured from the second snapshot, not the first.
    write_stat(root, add(second, [[0, 0, 0, 100, 0, 0, 0]] * 3 + [[50, 50, 0, 0, 0, 0, 0]]))
    cpu = overview(client)["cpu"]
    assert cpu["percent"] == 25.0
    assert cpu["per_core_percent"] == [0.0, 0.0, 0.0, 100.0]


def test_top_processes_by_cpu_and_memory(make_client: MakeClient, root: Path):
    client = ours(make_client, cache_ttl=0)
    before = overview(client, "?limit=50")["processes"]
    assert before["count"] == 7
    assert all(p["cpu_percent"] is None for p in before["top_cpu"])

    # 4000 ticks over 4 CPUs: 1000 ticks of one CPU.
    write_stat(root, add(FIXTURE_CORES, [[500, 0, 200, 300, 0, 0, 0]] * 4))
    bump_process(root, 871, 200, 50)  # 25 %
    bump_process(root, 412, 30, 20)  # 5 %
    (root / "proc/2000").mkdir()
    write(
        root,
        "/proc/2000/stat",
        "2000 (my worker) R 1 2000 2000 0 -1 4194560 10 0 0 0 80 20 0 0 20 0 1 0 9000 "
        "1000 25 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
    )  # new since the last snapshot: all its 100 ticks are in the interval, 10 %
    write(root, "/proc/2000/statm", "1 25 0 0 0 0 0\n")  # psutil's resident pages
    body = overview(client, "?limit=50")["processes"]
    assert body["count"] == 8
    assert body["interval_seconds"] > 0
    assert [(p["pid"], p["name"], p["cpu_percent"]) for p in body["top_cpu"][:4]] == [
        (871, "python3", 25.0),
        (2000, "my worker", 10.0),
        (412, "hostapd", 5.0),
        (1, "systemd", 0.0),
    ]
    by_memory = body["top_memory"]
    assert [p["pid"] for p in by_memory] == [871, 1, 1204, 412, 530, 1105, 2000, 12]
    sd_pam = next(p for p in by_memory if p["pid"] == 1105)
    assert sd_pam == {
        "pid": 1105,
        "name": "(sd-pam)",
        "uid": 1000,
        "user": "pi",
        "state": "S",
        "threads": 1,
        "cpu_percent": 0.0,
        "rss_bytes": 430 * PAGE,
        "memory_percent": round(430 * PAGE * 100 / MEM_TOTAL, 1),
    }
    assert [(p["name"], p["user"]) for p in by_memory[2:5]] == [
        ("lighttpd", "www-data"),
        ("hostapd", "root"),
        ("dnsmasq", "dnsmasq"),
    ]
    # no status file: its owner and thread count are unknown
    assert (by_memory[6]["uid"], by_memory[6]["user"], by_memory[6]["threads"]) == (None, None, 0)


def test_a_reused_pid_counts_all_its_ticks(make_client: MakeClient, root: Path):
    client = ours(make_client, cache_ttl=0)
    overview(client)
    write_stat(root, add(FIXTURE_CORES, [[500, 0, 200, 300, 0, 0, 0]] * 4))
    # pid 871 now names a new process (its 2580 ticks went back to 100): all in
    # the interval, 100 of the 1000 ticks one CPU had, not 0.
    bump_process(root, 871, -2150, -330)
    shares = {p["pid"]: p["cpu_percent"] for p in overview(client)["processes"]["top_cpu"]}
    assert shares[871] == 10.0


def test_the_process_baseline_is_taken_off_the_start_up_path(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    import threading

    from raspapi.plugins.system.processes import ProcessSampler

    release, primed = threading.Event(), threading.Event()
    prime = ProcessSampler.prime

    def slow_prime(self: ProcessSampler) -> None:
        release.wait(10)
        prime(self)
        primed.set()

    monkeypatch.setattr(ProcessSampler, "prime", slow_prime)
    client = ours(make_client)  # started: the startup hooks have run
    assert not primed.is_set()
    release.set()
    assert overview(client)["processes"]["count"] == 7  # waits for the baseline
    assert primed.is_set()


def test_limit_sets_the_length_of_the_top_lists(make_client: MakeClient):
    client = ours(make_client)
    processes = overview(client)["processes"]
    assert len(processes["top_cpu"]) == len(processes["top_memory"]) == 5
    processes = overview(client, "?limit=2")["processes"]
    assert [p["pid"] for p in processes["top_memory"]] == [871, 1]
    assert len(processes["top_cpu"]) == 2


@pytest.mark.parametrize("limit", ["0", "51", "-3", "two", "1.5"])
def test_limit_out_of_range_is_422(client: TestClient, limit: str):
    response = client.get(f"/api/v1/system?limit={limit}", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["field"] == "limit"


def test_routes_are_documented(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    legacy_schema = paths["/system"]["get"]["responses"]["200"]["content"]["application/json"]
    assert list(legacy_schema["schema"]["properties"]) == LEGACY_KEYS
    v1 = paths["/api/v1/system"]["get"]
    assert v1["parameters"][0]["name"] == "limit"
    assert (
        "processes" in v1["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    )


def _schema(client: TestClient, path: str) -> dict[str, Any]:
    op = client.get("/openapi.json").json()["paths"][path]["get"]
    schema: dict[str, Any] = op["responses"]["200"]["content"]["application/json"]["schema"]
    return schema


def test_answers_fit_their_documented_schemas(make_client: MakeClient, root: Path):
    client = ours(make_client, cache_ttl=0)
    assert problems(legacy(client), _schema(client, "/system")) == []
    write_stat(root, add(FIXTURE_CORES, [[500, 0, 200, 300, 0, 0, 0]] * 4))
    body = overview(client, "?limit=50")
    assert body["cpu"]["percent"] is not None
    assert problems(body, _schema(client, "/api/v1/system")) == []
    # and the checker does catch a mismatch
    body["board"]["memory_mb"] = "4 GB"
    assert problems(body, _schema(client, "/api/v1/system")) == [
        "$.board.memory_mb: str is not ['integer', 'null']"
    ]


# -- psutil: the process table, users and disks ------------------------------------


def plugin_ctx(client: TestClient) -> Any:
    return client.app.state.runtime.manager.plugins["system"].ctx  # type: ignore[attr-defined]


def test_a_name_the_kernel_cut_is_completed_from_the_command_line(
    make_client: MakeClient, root: Path
):
    # psutil's name(): a 15-character comm that starts the command's file name.
    stat = (root / "proc/530/stat").read_text().replace("(dnsmasq)", "(wpa_supplicant_)")
    write(root, "/proc/530/stat", stat)
    write(root, "/proc/530/cmdline", "/usr/sbin/wpa_supplicant_ctl\0-B\0")
    names = {
        p["pid"]: p["name"]
        for p in overview(ours(make_client), "?limit=50")["processes"]["top_memory"]
    }
    assert names[530] == "wpa_supplicant_ctl"
    assert names[1105] == "(sd-pam)"  # short names stay the kernel's


def test_state_letters_are_the_kernels_for_every_psutil_status():
    from psutil import _pslinux
    from raspapi.plugins.system.processes import STATE_LETTERS

    for letter, status in _pslinux.PROC_STATUSES.items():
        assert STATE_LETTERS[status] == ("X" if letter == "x" else letter), status


def test_psutil_reads_each_apps_own_root_and_is_set_back(make_client: MakeClient):
    import psutil

    fixture = ours(make_client, cache_ttl=0)
    machine = plugin_ctx(ours(make_client, root=Path("/"))).service(system_service())
    for _ in range(2):  # in turn: neither app's root leaks into the other's
        assert overview(fixture)["processes"]["count"] == 7
        assert psutil.PROCFS_PATH == "/proc"
        before = set(psutil.pids())
        seen = {p.process.pid for p in machine.processes._scan()}
        assert before & set(psutil.pids()) <= seen
        assert [d["mount_point"] for d in overview(fixture)["disks"]][:1] == ["/"]


def test_the_process_table_of_the_machine_is_psutils():
    import psutil
    from raspapi.plugins.system.processes import CLOCK_TICKS

    with make_machine_app() as client:
        sampler = plugin_ctx(client).service(system_service()).processes
        before = set(psutil.pids())
        procs = {p.process.pid: p for p in sampler._scan()}
        after = set(psutil.pids())
    assert before & after <= set(procs) <= before | after
    mine = psutil.Process()
    times = mine.cpu_times()
    assert procs[os.getpid()].process == mine
    assert procs[os.getpid()].ticks <= round((times.user + times.system) * CLOCK_TICKS)


def test_users_of_the_machine_are_psutils_and_match_the_utmp_reader():
    import psutil
    from raspapi.plugins.system import probe

    with make_machine_app() as client:
        ctx = plugin_ctx(client)
        ours_ = probe.users(ctx)
        theirs = psutil.users()
        assert [(u["user"], u["terminal"], u["pid"]) for u in ours_] == [
            (u.name, u.terminal or "", u.pid) for u in theirs
        ]
        # The reader fixture machines use parses the same file the same way.
        assert probe.root_users(ctx) == ours_


def test_users_of_the_machine_take_the_answers_shape(monkeypatch: pytest.MonkeyPatch):
    import psutil
    from raspapi.plugins.system import probe

    suser = collections.namedtuple("suser", "name terminal host started pid")
    fake = [
        suser("pi", "pts/0", "192.168.50.10", 1710068400.75, 1733),
        suser("root", None, "", 1710065502.0, 1102),
    ]
    monkeypatch.setattr(psutil, "users", lambda: fake)
    with make_machine_app() as client:
        assert probe.users(plugin_ctx(client)) == [
            {
                "user": "pi",
                "terminal": "pts/0",
                "host": "192.168.50.10",
                "login_at": "2024-03-10T11:00:00Z",
                "pid": 1733,
            },
            {
                "user": "root",
                "terminal": "",
                "host": None,
                "login_at": "2024-03-10T10:11:42Z",
                "pid": 1102,
            },
        ]


def test_disks_of_the_machine_are_psutils():
    import psutil

    with make_machine_app() as client:
        body = client.get("/api/v1/system").json()
        used_disk = client.get("/system").json()["usedDisk"]
    partitions = {p.mountpoint: p for p in psutil.disk_partitions(all=True)}
    for disk in body["disks"]:
        part = partitions[disk["mount_point"]]
        assert (disk["device"], disk["fs_type"]) == (part.device, part.fstype)
        assert disk["total_bytes"] == psutil.disk_usage(disk["mount_point"]).total
    root = psutil.disk_usage("/")
    assert abs(used_disk - math.ceil(root.used * 100 / (root.used + root.free))) <= 1


def test_cpu_frequencies_of_the_machine_agree_with_psutil():
    """Per CPU here, per cpufreq policy in psutil: the same scaling limits."""
    import psutil
    from raspapi.plugins.system import probe

    with make_machine_app() as client:
        ours_ = probe.cpu_frequencies(plugin_ctx(client))
    theirs = psutil.cpu_freq(percpu=True) if hasattr(psutil, "cpu_freq") else []
    if ours_:
        assert {(f["min_mhz"], f["max_mhz"]) for f in ours_} == {(f.min, f.max) for f in theirs}
    else:  # no cpufreq folder: psutil falls back to /proc/cpuinfo, without limits
        assert all((f.min, f.max) == (0.0, 0.0) for f in theirs)


def system_service() -> Any:
    from raspapi.plugins.system.service import SystemService

    return SystemService


def make_machine_app() -> TestClient:
    """The system plugin alone, reading the machine this test runs on."""
    from raspapi.plugins import system

    from raspapi.testing import make_app

    return make_app(plugins=[system], root=Path("/"))


def test_without_a_request_the_process_baseline_waits_prime_delay(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
):
    """psutil is not imported before the first answers: the baseline comes
    PRIME_DELAY after start when no request asks for it sooner."""
    import threading

    from raspapi.plugins.system import service as service_module
    from raspapi.plugins.system.processes import ProcessSampler

    primed = threading.Event()
    prime = ProcessSampler.prime

    def recording(self: ProcessSampler) -> None:
        prime(self)
        primed.set()

    monkeypatch.setattr(ProcessSampler, "prime", recording)
    monkeypatch.setattr(service_module, "PRIME_DELAY", 0.5)
    started = time.monotonic()
    ours(make_client)
    assert not primed.is_set()
    assert primed.wait(10)
    assert time.monotonic() - started >= 0.5
