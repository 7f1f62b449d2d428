"""The networking plugin: RaspAP's /networking and /api/v1/networking on the fixture machine.

The fixture has lo, eth0, wlan0 and docker0 in /sys/class/net and /proc/net/dev,
and a stand-in `ip` (usr/bin/ip) printing fake/ip/addr.json as `ip -j` does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient


@pytest.fixture
def client(loop_client: TestClient) -> TestClient:
    """The app once on each event loop: the service runs its programs on uvloop."""
    return loop_client


COUNTERS = (
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_dropped",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_dropped",
)
ODD_NAMES = [
    "..",
    "%2e%2e",
    "..%2Fetc%2Fpasswd",
    "a%2Fb",
    "%00",
    "eth0%00",
    "%20",
    "x" * 5000,
    "eth0:1",
    "%C3%BC",
    "wlan0wlan0wlan0wlan0",
]


def sys_counter(root: Path, iface: str, name: str) -> int:
    return int((root / "sys/class/net" / iface / "statistics" / name).read_text())


def dev_line(name: str, values: dict[str, int]) -> str:
    rx = [values["rx_bytes"], values["rx_packets"], values["rx_errors"], values["rx_dropped"]]
    tx = [values["tx_bytes"], values["tx_packets"], values["tx_errors"], values["tx_dropped"]]
    return f"{name:>6}: " + " ".join(str(v) for v in [*rx, 0, 0, 0, 0, *tx, 0, 0, 0, 0])


def write_proc_net_dev(root: Path, counters: dict[str, dict[str, int]]) -> None:
    head = (
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets "
        "errs drop fifo colls carrier compressed\n"
    )
    lines = [dev_line(name, values) for name, values in counters.items()]
    (root / "proc/net/dev").write_text(head + "\n".join(lines) + "\n")


def v1_counters(client: TestClient) -> dict[str, dict[str, int]]:
    body = client.get("/api/v1/networking", headers=AUTH).json()
    return {i["name"]: i["counters"] for i in body["interfaces"]}


# -- RaspAP's /networking --------------------------------------------------------


def test_legacy_shape_skips_lo_and_docker(client: TestClient, root: Path):
    response = client.get("/networking", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["interfaces", "throughput"]
    assert list(body["interfaces"]) == ["eth0", "wlan0"]
    assert list(body["throughput"]) == ["eth0", "wlan0"]
    assert body["interfaces"]["eth0"] == {
        "IP_address": "192.168.1.50",
        "Netmask": "255.255.255.0",
        "MAC_address": "dc:a6:32:12:34:56",
    }
    assert list(body["interfaces"]["wlan0"]) == ["IP_address", "Netmask", "MAC_address"]
    assert body["interfaces"]["wlan0"]["IP_address"] == "10.3.141.1"


@pytest.mark.parametrize("iface", ["eth0", "wlan0"])
def test_legacy_throughput_labels_say_what_they_hold(client: TestClient, root: Path, iface: str):
    throughput = client.get("/networking", headers=AUTH).json()["throughput"][iface]
    assert list(throughput) == ["RX_packets", "RX_bytes", "TX_packets", "TX_bytes"]
    expected = {
        "RX_packets": sys_counter(root, iface, "rx_packets"),
        "RX_bytes": sys_counter(root, iface, "rx_bytes"),
        "TX_packets": sys_counter(root, iface, "tx_packets"),
        "TX_bytes": sys_counter(root, iface, "tx_bytes"),
    }
    # The four fixture counters differ, so any swapped label would show.
    assert len(set(expected.values())) == 4
    assert throughput == expected
    assert all(type(v) is int for v in throughput.values())


def test_legacy_without_addresses_gives_nulls(client: TestClient, root: Path):
    (root / "fake/ip/addr.json").unlink()  # `ip` now fails, as with no iproute2
    body = client.get("/networking", headers=AUTH).json()
    assert body["interfaces"]["eth0"] == {
        "IP_address": None,
        "Netmask": None,
        "MAC_address": "dc:a6:32:12:34:56",
    }
    assert body["throughput"]["eth0"]["RX_bytes"] == sys_counter(root, "eth0", "rx_bytes")


def test_legacy_on_an_empty_machine_is_empty_not_500(client: TestClient, root: Path):
    import shutil

    shutil.rmtree(root / "sys/class/net")
    (root / "proc/net/dev").unlink()
    (root / "fake/ip/addr.json").write_text("[]")
    response = client.get("/networking", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"interfaces": {}, "throughput": {}}


def test_legacy_interface_without_ipv4_has_null_address(client: TestClient, root: Path):
    text = (root / "fake/ip/addr.json").read_text()
    (root / "fake/ip/addr.json").write_text(
        text.replace('"family":"inet","local":"10.3', '"family":"x","local":"10.3')
    )
    wlan0 = client.get("/networking", headers=AUTH).json()["interfaces"]["wlan0"]
    assert wlan0 == {"IP_address": None, "Netmask": None, "MAC_address": "dc:a6:32:ab:cd:ef"}


# -- /api/v1/networking ----------------------------------------------------------


def test_v1_lists_every_interface_in_ifindex_order(client: TestClient):
    body = client.get("/api/v1/networking", headers=AUTH).json()
    assert [i["name"] for i in body["interfaces"]] == ["lo", "eth0", "wlan0", "docker0"]
    assert body["addresses_error"] is None
    assert body["rate_interval_seconds"] is None
    assert body["sampled_at"].endswith("Z")


def test_v1_interface_in_full(client: TestClient, root: Path):
    eth0 = client.get("/api/v1/networking/eth0", headers=AUTH).json()
    assert eth0["name"] == "eth0"
    assert eth0["ifindex"] == 2
    assert eth0["mac_address"] == "dc:a6:32:12:34:56"
    assert eth0["mtu"] == 1500
    assert eth0["operstate"] == "up"
    assert eth0["carrier"] is True
    assert eth0["up"] is True
    assert eth0["speed_mbps"] == 1000
    assert eth0["ipv4"] == [
        {"address": "192.168.1.50", "prefix_length": 24, "scope": "global"},
        {"address": "192.168.1.51", "prefix_length": 24, "scope": "global"},
    ]
    assert eth0["ipv6"] == [
        {"address": "2001:db8:1:2:dea6:32ff:fe12:3456", "prefix_length": 64, "scope": "global"},
        {"address": "fe80::dea6:32ff:fe12:3456", "prefix_length": 64, "scope": "link"},
    ]
    assert eth0["counters"] == {name: sys_counter(root, "eth0", name) for name in COUNTERS}
    assert eth0["rates"] == {f"{name}_per_second": None for name in COUNTERS}
    assert eth0["addresses_error"] is None


def test_v1_unknown_speed_down_link_and_loopback(client: TestClient):
    by_name = {
        i["name"]: i for i in client.get("/api/v1/networking", headers=AUTH).json()["interfaces"]
    }
    assert by_name["wlan0"]["speed_mbps"] is None  # the driver says -1
    assert by_name["lo"]["speed_mbps"] is None  # no speed file
    assert by_name["lo"]["up"] is True  # operstate "unknown", carrier 1
    assert by_name["lo"]["ipv6"] == [{"address": "::1", "prefix_length": 128, "scope": "host"}]
    docker0 = by_name["docker0"]
    assert (docker0["operstate"], docker0["carrier"], docker0["up"]) == ("down", False, False)
    assert docker0["ipv4"] == [{"address": "172.17.0.1", "prefix_length": 16, "scope": "global"}]


def test_v1_reads_addresses_with_ip_json(client: TestClient, root: Path):
    client.get("/api/v1/networking", headers=AUTH)
    calls = (root / "fake/ip/calls.log").read_text().splitlines()
    assert calls == ["-j address show"]


def test_addresses_are_read_less_often_than_counters(make_client: MakeClient, root: Path):
    client = make_client(cache_ttl=0)
    before = v1_counters(client)
    grown = {name: dict(values) for name, values in before.items()}
    grown["wlan0"]["tx_bytes"] += 42
    write_proc_net_dev(root, grown)
    assert v1_counters(client)["wlan0"]["tx_bytes"] == before["wlan0"]["tx_bytes"] + 42
    assert (root / "fake/ip/calls.log").read_text().splitlines() == ["-j address show"]


def test_rates_between_refreshes(make_client: MakeClient, root: Path):
    client = make_client(cache_ttl=0)
    before = v1_counters(client)
    first = client.get("/api/v1/networking/eth0", headers=AUTH).json()
    assert first["rates"]["rx_bytes_per_second"] is None
    grown = {name: dict(values) for name, values in before.items()}
    grown["eth0"]["rx_bytes"] += 1_500_000
    grown["eth0"]["tx_packets"] += 300
    write_proc_net_dev(root, grown)
    time.sleep(0.6)
    second = client.get("/api/v1/networking/eth0", headers=AUTH).json()
    interval = second["rate_interval_seconds"]
    assert 0.5 <= interval < 10
    rates = second["rates"]
    assert rates["rx_bytes_per_second"] == pytest.approx(1_500_000 / interval, rel=0.01)
    assert rates["tx_packets_per_second"] == pytest.approx(300 / interval, rel=0.01)
    assert rates["rx_packets_per_second"] == 0
    assert second["counters"]["rx_bytes"] == before["eth0"]["rx_bytes"] + 1_500_000


def test_rates_are_null_after_a_counter_went_back(make_client: MakeClient, root: Path):
    client = make_client(cache_ttl=0)
    before = v1_counters(client)
    shrunk = {name: dict(values) for name, values in before.items()}
    shrunk["eth0"]["rx_bytes"] = 10  # the interface was re-created
    write_proc_net_dev(root, shrunk)
    time.sleep(0.6)
    body = client.get("/api/v1/networking", headers=AUTH).json()
    rates = {i["name"]: i["rates"] for i in body["interfaces"]}
    assert rates["eth0"]["rx_bytes_per_second"] is None
    assert rates["wlan0"]["rx_bytes_per_second"] == 0


def test_rates_need_half_a_second_between_samples(make_client: MakeClient, root: Path):
    client = make_client(cache_ttl=0)
    client.get("/api/v1/networking", headers=AUTH)
    body = client.get("/api/v1/networking/eth0", headers=AUTH).json()
    assert body["rate_interval_seconds"] is None
    assert body["rates"]["rx_bytes_per_second"] is None


def test_counters_come_from_proc_net_dev_first(client: TestClient, root: Path):
    (root / "sys/class/net/eth0/statistics/rx_bytes").write_text("7\n")
    assert v1_counters(client)["eth0"]["rx_bytes"] == 1234567890


def test_counters_fall_back_to_sys_without_proc_net_dev(client: TestClient, root: Path):
    (root / "proc/net/dev").unlink()
    (root / "sys/class/net/eth0/statistics/rx_bytes").write_text("7\n")
    counters = v1_counters(client)
    assert counters["eth0"]["rx_bytes"] == 7
    assert counters["wlan0"] == {name: sys_counter(root, "wlan0", name) for name in COUNTERS}
    assert client.get("/networking", headers=AUTH).json()["throughput"]["eth0"]["RX_bytes"] == 7


def test_malformed_proc_net_dev_lines_fall_back_to_sys(client: TestClient, root: Path):
    text = (root / "proc/net/dev").read_text()
    text = text.replace("  eth0: 1234567890", "  eth0: lots-of")  # not a number
    text += "garbage without a colon\n  wlan9: 1 2 3\n"
    (root / "proc/net/dev").write_text(text)
    counters = v1_counters(client)
    assert counters["eth0"]["rx_bytes"] == sys_counter(root, "eth0", "rx_bytes")
    assert "wlan9" not in counters


def test_interface_without_any_counter_has_nulls(client: TestClient, root: Path):
    import shutil

    text = (root / "proc/net/dev").read_text()
    (root / "proc/net/dev").write_text(
        "\n".join(x for x in text.splitlines() if "wlan0" not in x) + "\n"
    )
    shutil.rmtree(root / "sys/class/net/wlan0/statistics")
    assert v1_counters(client)["wlan0"] == {name: None for name in COUNTERS}
    assert "wlan0" not in client.get("/networking", headers=AUTH).json()["throughput"]


def test_empty_and_malformed_sys_files_are_null(client: TestClient, root: Path):
    (root / "sys/class/net/eth0/mtu").write_text("")
    (root / "sys/class/net/eth0/speed").write_text("fast\n")
    (root / "sys/class/net/eth0/address").write_text("\n")
    (root / "sys/class/net/eth0/carrier").write_text("maybe\n")
    (root / "sys/class/net/eth0/operstate").unlink()
    eth0 = client.get("/api/v1/networking/eth0", headers=AUTH).json()
    assert eth0["mtu"] is None
    assert eth0["speed_mbps"] is None
    assert eth0["mac_address"] is None
    assert eth0["carrier"] is None
    assert (eth0["operstate"], eth0["up"]) == ("unknown", False)


def test_huge_proc_net_dev_is_read_bounded(client: TestClient, root: Path):
    path = root / "proc/net/dev"
    with path.open("a") as fh:
        for i in range(200_000):
            fh.write(f"  ghost{i}: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
    assert path.stat().st_size > 8 << 20
    started = time.monotonic()
    body = client.get("/api/v1/networking", headers=AUTH).json()
    assert time.monotonic() - started < 5
    assert [i["name"] for i in body["interfaces"]] == ["lo", "eth0", "wlan0", "docker0"]


@pytest.mark.parametrize(
    "output",
    ["", "not json", '{"ifname": "eth0"}', "[1, null, {}]", '[{"ifname": "eth0", "addr_info": 5}]'],
    ids=["empty", "text", "object", "odd-items", "odd-addr-info"],
)
def test_odd_ip_output_means_no_addresses_never_500(client: TestClient, root: Path, output: str):
    (root / "fake/ip/addr.json").write_text(output)
    response = client.get("/api/v1/networking/eth0", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["ipv4"] == []
    assert client.get("/networking", headers=AUTH).status_code == 200


def test_bad_address_entries_are_skipped(client: TestClient, root: Path):
    (root / "fake/ip/addr.json").write_text(
        '[{"ifname": "eth0", "addr_info": ['
        '{"family": "inet", "local": "999.1.1.1", "prefixlen": 24},'
        '{"family": "inet", "local": "10.0.0.1", "prefixlen": 40},'
        '{"family": "inet", "local": "fe80::1", "prefixlen": 64},'
        '{"family": "inet", "local": "10.0.0.2", "prefixlen": true},'
        '{"family": "inet", "local": "10.0.0.3", "prefixlen": 8}]}]'
    )
    eth0 = client.get("/api/v1/networking/eth0", headers=AUTH).json()
    assert eth0["ipv4"] == [{"address": "10.0.0.3", "prefix_length": 8, "scope": None}]


def test_failing_ip_is_reported(client: TestClient, root: Path):
    (root / "fake/ip/addr.json").unlink()
    body = client.get("/api/v1/networking", headers=AUTH).json()
    assert "exited with status 255" in body["addresses_error"]
    assert all(i["ipv4"] == [] and i["ipv6"] == [] for i in body["interfaces"])


def test_unknown_interface_is_404(client: TestClient):
    response = client.get("/api/v1/networking/eth9", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {
        "detail": "no network interface named 'eth9'",
        "code": "unknown_interface",
    }


@pytest.mark.parametrize("name", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_interface_names_never_500(client: TestClient, name: str):
    response = client.get(f"/api/v1/networking/{name}", headers=AUTH)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert len(response.text) < 500  # a long name is not echoed back whole


def test_status_ok_with_details(client: TestClient):
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["networking"]
    assert plugin["state"] == "ok"
    assert plugin["details"]["interfaces"] == 4
    assert plugin["details"]["addresses"].startswith("from ")


def test_unavailable_without_sys_and_proc(client: TestClient, root: Path):
    import shutil

    shutil.rmtree(root / "sys/class/net")
    (root / "proc/net/dev").unlink()
    response = client.get("/api/v1/networking", headers=AUTH)
    assert response.status_code == 503
    assert "/sys/class/net" in response.json()["detail"]
    plugin = client.get("/ready", headers=AUTH).json()["plugins"]["networking"]
    assert plugin["state"] == "unavailable"
    # RaspAP's route keeps answering its shape.
    assert client.get("/networking", headers=AUTH).status_code == 200


def test_only_proc_net_dev_still_lists_interfaces(client: TestClient, root: Path):
    import shutil

    shutil.rmtree(root / "sys/class/net")
    body = client.get("/api/v1/networking", headers=AUTH).json()
    assert [i["name"] for i in body["interfaces"]] == ["docker0", "eth0", "lo", "wlan0"]
    assert {i["name"]: i["counters"]["rx_bytes"] for i in body["interfaces"]}["eth0"] == 1234567890
