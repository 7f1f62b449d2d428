"""GET /metrics: the raspapi_metrics hook, node and plugin families, the daemon's own,
promtool's check, and the optional listener for scrapers."""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from raspapi.http.errors import StartupError
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient


def dropin(settings: Settings, name: str, source: str) -> None:
    settings.plugins_dir.mkdir(parents=True, exist_ok=True)
    (settings.plugins_dir / f"{name}.py").write_text(textwrap.dedent(source))


def scrape(client: TestClient) -> str:
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample as {(name, labels): value}, through the official parser."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, /, **labels: str
) -> float:
    return found[(metric, frozenset(labels.items()))]


def test_hook_raspapi_metrics(settings: Settings, make_client: MakeClient):
    dropin(
        settings,
        "lamp",
        """
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from raspapi import hookimpl

        @hookimpl
        async def raspapi_metrics(ctx):
            on = GaugeMetricFamily("lamp_on", "Whether the lamp is on", labels=["room"])
            on.add_metric(["hall"], 1)
            return [on, CounterMetricFamily("lamp_switches", "Times switched", value=7)]
        """,
    )
    dropin(
        settings,
        "copycat",
        """
        from prometheus_client.core import GaugeMetricFamily
        from raspapi import hookimpl

        @hookimpl
        def raspapi_metrics(ctx):
            return [GaugeMetricFamily("node_load1", "The system plugin's name", value=99),
                    GaugeMetricFamily("copycat_ok", "Still served", value=1)]
        """,
    )
    dropin(
        settings,
        "broken",
        """
        from raspapi import hookimpl

        @hookimpl
        def raspapi_metrics(ctx):
            raise OSError("sensor bus gone")
        """,
    )
    dropin(
        settings,
        "sloppy",
        """
        from raspapi import hookimpl

        @hookimpl
        def raspapi_metrics(ctx):
            return [{"name": "not_a_family"}]
        """,
    )
    found = samples(scrape(make_client()))
    assert value(found, "lamp_on", room="hall") == 1.0
    assert value(found, "lamp_switches_total") == 7.0
    # A name already served (built-in plugins come first) is dropped, not the rest.
    assert value(found, "node_load1") == 0.42
    assert value(found, "copycat_ok") == 1.0
    for plugin, ok in (("lamp", 1.0), ("copycat", 1.0), ("broken", 0.0), ("sloppy", 0.0)):
        assert value(found, "raspapi_plugin_collect_success", plugin=plugin, hook="metrics") == ok
        seconds = value(found, "raspapi_plugin_collect_seconds", plugin=plugin, hook="metrics")
        assert 0 <= seconds < 5


def test_node_thermal_and_network_families(client: TestClient):
    found = samples(scrape(client))
    assert value(found, "node_load1") == 0.42
    assert value(found, "node_load15") == 0.3
    assert value(found, "node_memory_MemTotal_bytes") == 3882924 * 1024
    assert value(found, "node_memory_MemAvailable_bytes") == 3402728 * 1024
    assert value(found, "node_memory_SwapFree_bytes") == 98300 * 1024
    assert value(found, "node_boot_time_seconds") == 1710065471
    assert value(found, "node_cpu_seconds_total", cpu="1", mode="user") == 2600 / os.sysconf(
        "SC_CLK_TCK"
    )
    assert value(found, "node_cpu_scaling_frequency_hertz", cpu="0") == 1.5e9
    root_fs = {"device": "/dev/mmcblk0p2", "fstype": "ext4", "mountpoint": "/", "device_error": ""}
    assert value(found, "node_filesystem_size_bytes", **root_fs) > 0
    assert value(found, "node_filesystem_readonly", **root_fs) == 0
    assert (
        value(
            found,
            "node_filesystem_readonly",
            device="/dev/sda1",
            fstype="vfat",
            mountpoint="/media/pi/USB DISK",
            device_error="",
        )
        == 1
    )
    assert value(found, "node_thermal_zone_temp", type="cpu-thermal", zone="0") == 48.686
    assert (
        value(
            found, "node_hwmon_temp_celsius", chip="hwmon0", chip_name="cpu_thermal", sensor="temp1"
        )
        == 48.686
    )
    # The fixture's firmware flags: 0x50000, under-voltage and throttling since boot.
    assert value(found, "raspapi_throttled", flag="under_voltage") == 0
    assert value(found, "raspapi_throttled_since_boot", flag="under_voltage") == 1
    assert value(found, "raspapi_throttled_since_boot", flag="throttled") == 1
    assert value(found, "node_network_receive_bytes_total", device="eth0") == 1234567890
    assert value(found, "node_network_transmit_drop_total", device="wlan0") == 1
    assert value(found, "node_network_up", device="eth0") == 1
    assert value(found, "node_network_speed_bytes", device="eth0") == 125_000_000


def test_the_daemons_own_families(client: TestClient):
    client.get("/api/v1/networking/eth0", headers=AUTH)
    client.get("/api/v1/networking/nope", headers=AUTH)
    found = samples(scrape(client))
    assert value(found, "raspapi_build_info", version="0.1.0", python=_python()) == 1
    assert value(found, "raspapi_plugin_state", plugin="system", state="ok") == 1
    assert value(found, "raspapi_plugin_state", plugin="system", state="failed") == 0
    assert value(found, "raspapi_plugin_state", plugin="hostapd", state="unavailable") == 1
    route = {"method": "GET", "route": "/api/v1/networking/{interface}"}
    assert value(found, "raspapi_http_requests_total", **route) == 2
    assert value(found, "raspapi_http_request_errors_total", kind="client", **route) == 1
    assert value(found, "raspapi_http_request_duration_seconds_count", **route) == 2
    assert value(found, "raspapi_http_request_duration_seconds_bucket", le="+Inf", **route) == 2
    assert value(found, "process_resident_memory_bytes") > 0
    for plugin in ("system", "thermal", "networking", "history"):
        assert value(found, "raspapi_plugin_collect_success", plugin=plugin, hook="metrics") == 1


def _python() -> str:
    import sys

    return sys.version.split()[0]


def test_needs_a_read_key(client: TestClient):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"access_token": "wrong"}).status_code == 401
    made = client.post(
        "/api/v1/keys", json={"name": "prometheus", "scopes": ["read"]}, headers=AUTH
    )
    scraper = {"Authorization": f"Bearer {made.json()['key']}"}
    assert client.get("/metrics", headers=scraper).status_code == 200


def test_openmetrics_when_asked(client: TestClient):
    response = client.get(
        "/metrics", headers={**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


@pytest.mark.integration
def test_promtool_accepts_the_exposition(client: TestClient, tmp_path: Path):
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "promtool is not installed; CI must install it (apt-get install prometheus)"
            )
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    client.get("/api/v1/networking/eth0", headers=AUTH)  # request metrics with a template
    text = scrape(client)
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # promtool prints lint findings (and exits non-zero) for any problem it sees. The
    # one documented exception: node_exporter's own names, which promtool flags in
    # node_exporter's output too (its camelCase /proc field names, entropy in bits).
    findings = (done.stdout + done.stderr).splitlines()
    assert findings or done.returncode == 0
    for line in findings:
        name, _, message = line.partition(" ")
        camel = message == "metric names should be written in 'snake_case' not 'camelCase'"
        bits = message == 'use base unit "bytes" instead of "bits"'
        assert (camel and name.startswith(NODE_CAMEL_CASE)) or (
            bits and name.startswith("node_entropy_")
        ), line
    assert "node_memory_MemAvailable_bytes" in text  # so the exception is exercised


#: node_exporter families named after the kernel's camelCase fields.
NODE_CAMEL_CASE = ("node_memory_", "node_netstat_", "node_sockstat_")


def test_a_separate_listener_for_scrapers(make_client: MakeClient):
    client = make_client(metrics_address=("127.0.0.1", 0))
    port = client.app.state.exporter.listener_port  # type: ignore[attr-defined]
    assert port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert value(found, "node_load1") == 0.42
    assert value(found, "raspapi_plugin_state", plugin="system", state="ok") == 1


def test_listener_address_setting(tmp_path: Path):
    def read(value: str) -> Settings:
        return Settings.from_env(
            {"RASPAPI_METRICS_ADDRESS": value, "RASPAPI_ENV_FILE": str(tmp_path / "none")},
            cwd=tmp_path,
        )

    assert read("127.0.0.1:9101").metrics_address == ("127.0.0.1", 9101)
    assert read("[::1]:9101").metrics_address == ("::1", 9101)
    assert read(":9101").metrics_address == ("0.0.0.0", 9101)
    assert read("").metrics_address is None
    for bad in ("9101", "host:port", "127.0.0.1:70000"):
        with pytest.raises(StartupError, match="RASPAPI_METRICS_ADDRESS"):
            read(bad)


def test_history_settings(tmp_path: Path):
    def read(**values: str) -> Settings:
        return Settings.from_env(
            {"RASPAPI_ENV_FILE": str(tmp_path / "none"), **values}, cwd=tmp_path
        )

    defaults = read()
    assert (
        defaults.history_interval,
        defaults.history_retention_days,
        defaults.history_downsampled_days,
    ) == (10.0, 7.0, 90.0)
    assert read(RASPAPI_HISTORY_INTERVAL="0.2").history_interval == 0.2
    for name, bad in (
        ("RASPAPI_HISTORY_INTERVAL", "0"),
        ("RASPAPI_HISTORY_INTERVAL", "often"),
        ("RASPAPI_HISTORY_RETENTION_DAYS", "-1"),
    ):
        with pytest.raises(StartupError, match=name):
            read(**{name: bad})
    with pytest.raises(StartupError, match="shorter than RASPAPI_HISTORY_RETENTION_DAYS"):
        read(RASPAPI_HISTORY_RETENTION_DAYS="30", RASPAPI_HISTORY_DOWNSAMPLED_DAYS="10")


def test_node_exporter_families_from_the_fixture(client: TestClient):
    """Every node_exporter collector the issue lists, with node_exporter's names, labels
    and types, read from the fixture root's /proc and /sys."""
    text = scrape(client)
    found = samples(text)
    hertz = os.sysconf("SC_CLK_TCK")
    # cpu: every mode of /proc/stat, guest time apart.
    for mode, ticks in (
        ("user", 2500),
        ("nice", 50),
        ("system", 1250),
        ("idle", 20000),
        ("iowait", 200),
        ("irq", 0),
        ("softirq", 25),
        ("steal", 0),
    ):
        assert value(found, "node_cpu_seconds_total", cpu="0", mode=mode) == ticks / hertz
    assert value(found, "node_cpu_guest_seconds_total", cpu="3", mode="nice") == 0
    # meminfo: node_exporter's casing, "(anon)" as "_anon".
    assert value(found, "node_memory_SReclaimable_bytes") == 41432 * 1024
    assert value(found, "node_memory_Active_anon_bytes") == 1288 * 1024
    # stat
    assert value(found, "node_context_switches_total") == 15844012
    assert value(found, "node_intr_total") == 9372811
    assert value(found, "node_forks_total") == 18422
    assert value(found, "node_procs_running") == 2
    assert value(found, "node_procs_blocked") == 0
    # pressure: microseconds to seconds.
    assert value(found, "node_pressure_cpu_waiting_seconds_total") == 1.234567
    assert value(found, "node_pressure_io_stalled_seconds_total") == 2.0
    assert value(found, "node_pressure_memory_waiting_seconds_total") == 0.345678
    assert ("node_pressure_irq_stalled_seconds_total", frozenset()) not in found  # no file
    # filesystem: inodes and errors too; remote and pseudo filesystems left out.
    root_fs = {"device": "/dev/mmcblk0p2", "fstype": "ext4", "mountpoint": "/", "device_error": ""}
    assert value(found, "node_filesystem_files", **root_fs) > 0
    assert value(found, "node_filesystem_device_error", **root_fs) == 0
    mounts = {dict(k)["mountpoint"] for n, k in found if n == "node_filesystem_readonly"}
    assert "/mnt/nas" not in mounts and "/proc" not in mounts and "/sys/fs/cgroup" not in mounts
    # diskstats: sectors to bytes, milliseconds to seconds; loop/ram and sd partitions out.
    assert value(found, "node_disk_read_bytes_total", device="mmcblk0") == 1594342 * 512
    assert value(found, "node_disk_write_time_seconds_total", device="mmcblk0") == 523.581
    assert value(found, "node_disk_io_now", device="mmcblk0") == 0
    assert value(found, "node_disk_flush_requests_total", device="mmcblk0") == 5120
    assert value(found, "node_disk_discards_completed_total", device="sda") == 4
    assert value(found, "node_disk_info", device="mmcblk0", major="179", minor="0") == 1
    disks = {dict(k)["device"] for n, k in found if n == "node_disk_reads_completed_total"}
    assert disks == {"mmcblk0", "mmcblk0p1", "mmcblk0p2", "sda"}
    # netdev: every column of /proc/net/dev; netclass facts.
    assert value(found, "node_network_receive_multicast_total", device="eth0") == 5012
    assert value(found, "node_network_transmit_colls_total", device="eth0") == 0
    assert value(found, "node_network_carrier", device="eth0") == 1
    assert value(found, "node_network_mtu_bytes", device="eth0") == 1500
    assert any(n == "node_network_info" and dict(k)["device"] == "wlan0" for n, k in found)
    # uname: nodename is how the dashboard picks a host.
    uname = next(dict(k) for n, k in found if n == "node_uname_info")
    assert uname["nodename"] == "raspberrypi"
    assert uname["sysname"] == "Linux"
    assert uname["release"] == "6.6.51+rpt-rpi-v8"
    assert uname["version"].startswith("#1 SMP PREEMPT")
    assert uname["domainname"] == "(none)" and uname["machine"]
    # time
    assert value(found, "node_time_seconds") > 1.7e9
    # vmstat (untyped, node_exporter's default fields only)
    assert value(found, "node_vmstat_pgpgin") == 797171
    assert value(found, "node_vmstat_pgmajfault") == 1893
    assert value(found, "node_vmstat_oom_kill") == 1
    assert ("node_vmstat_nr_free_pages", frozenset()) not in found
    assert "# TYPE node_vmstat_pswpout untyped" in text
    # entropy, filefd, sockstat, netstat
    assert value(found, "node_entropy_available_bits") == 256
    assert value(found, "node_filefd_allocated") == 1344
    assert value(found, "node_sockstat_sockets_used") == 183
    assert value(found, "node_sockstat_TCP_tw") == 2
    assert value(found, "node_sockstat_TCP_mem_bytes") == os.sysconf("SC_PAGE_SIZE")
    assert value(found, "node_sockstat_TCP6_inuse") == 3
    assert value(found, "node_netstat_Tcp_CurrEstab") == 4
    assert value(found, "node_netstat_TcpExt_ListenDrops") == 3
    assert value(found, "node_netstat_Ip6_InOctets") == 98765
    assert value(found, "node_netstat_Udp_InDatagrams") == 5432
    assert ("node_netstat_TcpExt_TW", frozenset()) not in found
    # arp, softnet, schedstat, udp queues
    assert value(found, "node_arp_entries", device="wlan0") == 4
    assert value(found, "node_softnet_processed_total", cpu="0") == 0x3A0F1
    assert value(found, "node_softnet_times_squeezed_total", cpu="0") == 2
    assert value(found, "node_schedstat_running_seconds_total", cpu="1") == 98.7654321
    assert value(found, "node_udp_queues", ip="v4", queue="tx") == 0x10
    assert value(found, "node_udp_queues", ip="v4", queue="rx") == 0x200
    for collector in ("cpu", "meminfo", "filesystem", "diskstats", "netstat"):
        assert value(found, "node_scrape_collector_success", collector=collector) == 1


def test_node_readers_survive_hostile_files(settings: Settings, make_client: MakeClient):
    """Odd, truncated or binary /proc files leave their families out, never the scrape."""
    import shutil as sh

    root = settings.root
    for name, junk in (
        ("proc/stat", "cpu0 a b c\nintr x\nbtime\ncpu99999999999999999999 1 2 3 4\n"),
        ("proc/meminfo", "MemTotal: lots kB\nBad Name(x): 1 kB\nOdd: 1 MB\n:\n"),
        ("proc/diskstats", "1 2\n 8 0 sda x y z 1 2 3 4 5 6 7 8 9\n"),
        ("proc/pressure/cpu", "some total=-\n\x00\x01"),
        ("proc/net/snmp", "Tcp: A B\nUdp: 1 2\n"),
        ("proc/net/sockstat", "sockets: used\nTCP: inuse\n\xff\xfe"),
        ("proc/vmstat", "pgpgin\npgfault x\n"),
    ):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        path.write_bytes(junk.encode("latin-1"))
    sh.rmtree(root / "proc/sys/kernel/random", ignore_errors=True)
    found = samples(scrape(make_client()))
    assert ("node_memory_MemTotal_bytes", frozenset()) not in found
    assert ("node_boot_time_seconds", frozenset()) not in found
    assert value(found, "node_load1") == 0.42
    assert value(found, "node_scrape_collector_success", collector="meminfo") == 1


def test_plugin_states_are_served_while_they_refresh(settings: Settings, make_client: MakeClient):
    """A scrape past the status period gets the last states while the plugins'
    checks run again behind it (a slow check never holds a scrape up)."""
    dropin(
        settings,
        "moody",
        """
        import asyncio
        from raspapi import hookimpl
        from raspapi.plugin import Status

        checks = []

        @hookimpl
        async def raspapi_status(ctx):
            checks.append(1)
            if len(checks) == 1:
                return Status.ok()
            await asyncio.sleep(1.5)  # the second check: slow, and a new state
            return Status.unavailable("moody today")
        """,
    )
    client = make_client()
    exporter = client.app.state.exporter  # type: ignore[attr-defined]
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    now = [0.0]
    exporter._statuses.clock = manager._status_cache.clock = lambda: now[0]
    first = samples(scrape(client))
    assert value(first, "raspapi_plugin_state", plugin="moody", state="ok") == 1
    now[0] += exporter._statuses.ttl + 0.1  # both periods over, within the stale one
    second = samples(scrape(client))
    assert value(second, "raspapi_plugin_state", plugin="moody", state="ok") == 1
    deadline = time.monotonic() + 10
    while True:
        found = samples(scrape(client))
        if value(found, "raspapi_plugin_state", plugin="moody", state="unavailable") == 1:
            break
        assert time.monotonic() < deadline, "the states were not refreshed in 10 s"
        time.sleep(0.1)
    # Past the stale period, a scrape waits for the states (none older than that).
    now[0] += 3 * exporter._statuses.ttl
    assert (
        value(samples(scrape(client)), "raspapi_plugin_state", plugin="moody", state="unavailable")
        == 1
    )
