"""The dhcp plugin: RaspAP's /dhcp and /api/v1/dhcp on a fixture RaspAP install."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient

LEGACY_KEYS = [
    "range_start",
    "range_end",
    "range_subnet_mask",
    "range_lease_time",
    "range_gateway",
    "range_nameservers",
]
EMPTY = {
    "range_start": "",
    "range_end": "",
    "range_subnet_mask": "",
    "range_lease_time": "",
    "range_gateway": "",
    "range_nameservers": [],
}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def test_legacy_dhcp_answers_raspap_shape(client: TestClient) -> None:
    r = client.get("/dhcp", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == LEGACY_KEYS
    assert body == {
        "range_start": "10.3.141.50",
        "range_end": "10.3.141.254",
        "range_subnet_mask": "255.255.255.0",
        "range_lease_time": "12h",
        # From the wlan0 block, although eth0's block comes first.
        "range_gateway": "10.3.141.1",
        "range_nameservers": ["9.9.9.9", "1.1.1.1"],
    }


def test_legacy_dhcp_needs_the_key(client: TestClient) -> None:
    r = client.get("/dhcp")
    assert r.status_code == 403
    assert r.json() == {"detail": "403: Unauthorized"}


def test_legacy_dhcp_missing_files_give_empty_values(root: Path, make_client: MakeClient) -> None:
    (root / "etc/dnsmasq.d/090_wlan0.conf").unlink()
    (root / "etc/dhcpcd.conf").unlink()
    r = make_client().get("/dhcp", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == EMPTY
    assert list(r.json()) == LEGACY_KEYS


def test_legacy_dhcp_empty_files_give_empty_values(root: Path, make_client: MakeClient) -> None:
    (root / "etc/dnsmasq.d/090_wlan0.conf").write_text("")
    (root / "etc/dhcpcd.conf").write_text("")
    r = make_client().get("/dhcp", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == EMPTY


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "dhcp-range=set:wlan0,10.3.141.50,10.3.141.254,255.255.255.0,12h",
            ("10.3.141.50", "10.3.141.254", "255.255.255.0", "12h"),
        ),
        (
            "dhcp-range=interface:wlan0,10.3.141.50,10.3.141.254,infinite",
            ("10.3.141.50", "10.3.141.254", "", "infinite"),
        ),
        ("dhcp-range=10.3.141.50,10.3.141.254,3600", ("10.3.141.50", "10.3.141.254", "", "3600")),
        (
            "dhcp-range=tag:ap,set:guests,10.0.0.10,10.0.0.20,255.0.0.0,10.255.255.255,1d",
            ("10.0.0.10", "10.0.0.20", "255.0.0.0", "1d"),
        ),
        (
            "dhcp-range = 10.3.141.50 , 10.3.141.254 , 255.255.255.0 , 45m   # spaces, comment",
            ("10.3.141.50", "10.3.141.254", "255.255.255.0", "45m"),
        ),
        ("dhcp-range=10.3.141.0,static", ("10.3.141.0", "", "", "")),
        ("dhcp-range=10.3.141.50,10.3.141.254", ("10.3.141.50", "10.3.141.254", "", "")),
    ],
)
def test_legacy_dhcp_range_forms(
    root: Path, make_client: MakeClient, line: str, expected: tuple[str, str, str, str]
) -> None:
    (root / "etc/dnsmasq.d/090_wlan0.conf").write_text(f"interface=wlan0\n{line}\n")
    body = make_client().get("/dhcp", headers=AUTH).json()
    got = (
        body["range_start"],
        body["range_end"],
        body["range_subnet_mask"],
        body["range_lease_time"],
    )
    assert got == expected


def test_legacy_dhcp_skips_malformed_and_commented_ranges(
    root: Path, make_client: MakeClient
) -> None:
    (root / "etc/dnsmasq.d/090_wlan0.conf").write_text(
        "#dhcp-range=192.168.9.1,192.168.9.9,12h\n"
        "dhcp-range=\n"
        "dhcp-range=not-an-address,10.3.141.9,12h\n"
        "dhcp-range=10.3.141.50,10.3.141.254,255.255.255.0,12h,surprise\n"
        "dhcp-range=::10,::ff,64,12h\n"  # IPv6: RaspAP's fields are the IPv4 range
        "dhcp-range=set:wlan0,10.3.141.60,10.3.141.70,30m\n"
    )
    (root / "etc/dhcpcd.conf").write_text(
        "static routers=192.168.1.1\n"  # global, not wlan0's
        "interface wlan0\n"
        "static routers=10.3.141.1\n"
        "static domain_name_servers=9.9.9.9, 1.1.1.1\n"
        "static domain_name_server=8.8.8.8\n"
        "ssid HomeNet\n"
        "static routers=172.16.0.1\n"  # the ssid block's, not wlan0's
        "interface\n"  # malformed: skipped
    )
    body = make_client().get("/dhcp", headers=AUTH).json()
    assert body == {
        "range_start": "10.3.141.60",
        "range_end": "10.3.141.70",
        "range_subnet_mask": "",
        "range_lease_time": "30m",
        "range_gateway": "10.3.141.1",
        "range_nameservers": ["9.9.9.9", "1.1.1.1", "8.8.8.8"],
    }


def test_legacy_dhcp_no_wlan0_block(root: Path, make_client: MakeClient) -> None:
    (root / "etc/dhcpcd.conf").write_text("interface eth0\nstatic routers=192.168.100.254\n")
    body = make_client().get("/dhcp", headers=AUTH).json()
    assert body["range_gateway"] == ""
    assert body["range_nameservers"] == []
    assert body["range_start"] == "10.3.141.50"


def test_api_dhcp_reports_every_range_static_lease_and_lease(client: TestClient) -> None:
    r = client.get("/api/v1/dhcp", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["ranges", "static_leases", "leases", "static_interfaces"]

    ranges = {(x["file"], x["start"]): x for x in body["ranges"]}
    assert set(ranges) == {
        ("/etc/dnsmasq.conf", "10.55.0.2"),
        ("/etc/dnsmasq.conf", "::100"),
        ("/etc/dnsmasq.d/090_eth0.conf", "192.168.100.50"),
        ("/etc/dnsmasq.d/090_wlan0.conf", "10.3.141.50"),
    }
    assert ranges[("/etc/dnsmasq.d/090_wlan0.conf", "10.3.141.50")] == {
        "file": "/etc/dnsmasq.d/090_wlan0.conf",
        "interface": "wlan0",
        "set_tag": None,
        "tags": [],
        "ip_version": 4,
        "start": "10.3.141.50",
        "end": "10.3.141.254",
        "netmask": "255.255.255.0",
        "broadcast": None,
        "prefix_length": None,
        "modes": [],
        "lease_time": "12h",
        "lease_seconds": 43200,
    }
    usb = ranges[("/etc/dnsmasq.conf", "10.55.0.2")]
    assert (usb["interface"], usb["lease_time"], usb["lease_seconds"]) == ("usb0", "infinite", None)
    eth = ranges[("/etc/dnsmasq.d/090_eth0.conf", "192.168.100.50")]
    assert (eth["interface"], eth["set_tag"], eth["lease_seconds"]) == ("eth0", "wired", 86400)
    v6 = ranges[("/etc/dnsmasq.conf", "::100")]
    assert (v6["ip_version"], v6["end"], v6["interface"], v6["modes"], v6["prefix_length"]) == (
        6,
        "::1ff",
        "wlan0",
        ["ra-names"],
        64,
    )
    # The commented-out range of dnsmasq.conf is not there.
    assert all(x["start"] != "192.168.0.50" for x in body["ranges"])

    static = {x["ip"]: x for x in body["static_leases"]}
    assert static["10.3.141.101"] == {
        "file": "/etc/dnsmasq.d/090_wlan0.conf",
        "mac": "b8:27:eb:4f:12:a3",
        "client_id": None,
        "ip": "10.3.141.101",
        "hostname": "pixel-7",
        "lease_time": "infinite",
        "lease_seconds": None,
        "ignore": False,
    }
    nas = static["192.168.100.20"]
    assert (nas["mac"], nas["client_id"], nas["hostname"], nas["lease_seconds"]) == (
        None,
        "01:52:54:00:6a:1b:2c",
        "nas",
        172800,
    )
    assert static["10.3.141.104"]["lease_time"] is None

    leases = body["leases"]
    assert [x["ip"] for x in leases] == [
        "10.3.141.101",
        "10.3.141.102",
        "10.3.141.103",
        "10.3.141.104",
    ]
    assert leases[0] == {
        "mac": "b8:27:eb:4f:12:a3",
        "ip": "10.3.141.101",
        "hostname": "pixel-7",
        "client_id": "01:b8:27:eb:4f:12:a3",
        "expires_at": "2030-01-01T01:00:00Z",
    }
    unknown = leases[2]
    assert unknown["hostname"] is None and unknown["client_id"] is None
    assert all(RFC3339_UTC.match(x["expires_at"]) for x in leases)

    wlan0 = next(x for x in body["static_interfaces"] if x["interface"] == "wlan0")
    assert wlan0 == {
        "interface": "wlan0",
        "ip_address": "10.3.141.1/24",
        "routers": ["10.3.141.1"],
        "name_servers": ["9.9.9.9", "1.1.1.1"],
    }


def test_api_dhcp_leases_file_edge_cases(root: Path, make_client: MakeClient) -> None:
    (root / "var/lib/misc/dnsmasq.leases").write_text(
        "0 b8:27:eb:00:00:01 10.3.141.5 printer *\n"  # infinite lease
        "garbage\n"
        "1893459600 b8:27:eb:00:00:02 not-an-ip x *\n"
        "notanumber b8:27:eb:00:00:03 10.3.141.7 y *\n"
        "1893459600 B8:27:EB:00:00:04 10.3.141.8 old-format\n"  # no client-id field
        "duid 00:01:00:01:2c:4f:3b:7a:b8:27:eb:00:00:00\n"
        "1893459600 1234567 fd00::25 laptop 00:01:00:01:aa:bb\n"
    )
    leases = make_client().get("/api/v1/dhcp", headers=AUTH).json()["leases"]
    assert leases == [
        {
            "mac": "b8:27:eb:00:00:01",
            "ip": "10.3.141.5",
            "hostname": "printer",
            "client_id": None,
            "expires_at": None,
        },
        {
            "mac": "b8:27:eb:00:00:04",
            "ip": "10.3.141.8",
            "hostname": "old-format",
            "client_id": None,
            "expires_at": "2030-01-01T01:00:00Z",
        },
        {
            "mac": None,
            "ip": "fd00::25",
            "hostname": "laptop",
            "client_id": "00:01:00:01:aa:bb",
            "expires_at": "2030-01-01T01:00:00Z",
        },
    ]


def test_api_dhcp_static_lease_forms(root: Path, make_client: MakeClient) -> None:
    (root / "etc/dnsmasq.d/090_wlan0.conf").write_text(
        "interface=wlan0\n"
        "dhcp-host=AA-BB-CC-DD-EE-FF,set:known,10.3.141.20,cam,2h\n"
        "dhcp-host=11:22:33:44:55:66,ignore\n"
        "dhcp-host=lap,10.3.141.21\n"
        "dhcp-host=id:*,aa:aa:aa:aa:aa:aa,[fd00::21]\n"
        "dhcp-host=\n"  # malformed: skipped
        "dhcp-host=aa:aa:aa:aa:aa:ab,10.3.141.22,bad host name!\n"  # malformed: skipped
    )
    body = make_client().get("/api/v1/dhcp", headers=AUTH).json()
    got = [
        (x["mac"], x["client_id"], x["ip"], x["hostname"], x["lease_seconds"], x["ignore"])
        for x in body["static_leases"]
        if x["file"] == "/etc/dnsmasq.d/090_wlan0.conf"
    ]
    assert got == [
        ("aa:bb:cc:dd:ee:ff", None, "10.3.141.20", "cam", 7200, False),
        ("11:22:33:44:55:66", None, None, None, None, True),
        (None, None, "10.3.141.21", "lap", None, False),
        ("aa:aa:aa:aa:aa:aa", None, "fd00::21", None, None, False),
    ]


def test_api_dhcp_unavailable_without_dnsmasq_config(root: Path, make_client: MakeClient) -> None:
    (root / "etc/dnsmasq.conf").unlink()
    for conf in (root / "etc/dnsmasq.d").iterdir():
        conf.unlink()
    client = make_client()
    r = client.get("/api/v1/dhcp", headers=AUTH)
    assert r.status_code == 503
    assert r.json()["code"] == "unavailable"
    assert "no dnsmasq configuration" in r.json()["detail"]
    # RaspAP's route keeps answering (dhcpcd.conf is still there).
    legacy = client.get("/dhcp", headers=AUTH)
    assert legacy.status_code == 200
    assert legacy.json()["range_start"] == ""
    assert legacy.json()["range_gateway"] == "10.3.141.1"
    ready = client.get("/ready", headers=AUTH).json()["plugins"]["dhcp"]
    assert ready["state"] == "unavailable"


def test_huge_leases_file_is_bounded(root: Path, make_client: MakeClient) -> None:
    lines = (
        f"1893459600 b8:27:eb:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x} "
        f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} host{i} *\n"
        for i in range(60_000)
    )
    (root / "var/lib/misc/dnsmasq.leases").write_text("".join(lines))
    r = make_client().get("/api/v1/dhcp", headers=AUTH)
    assert r.status_code == 200
    leases = r.json()["leases"]
    # Read up to 1 MiB: the first leases, each one whole (the cut last line is left out).
    assert 10_000 < len(leases) < 60_000
    for i, lease in enumerate(leases):
        assert lease["hostname"] == f"host{i}"
        assert lease["ip"] == f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\xff\xfe garbage \x80\n" * 100, b"dhcp-range=" + b"," * 10000, b"=\n==\n=,=,\n"],
)
def test_garbage_never_gives_500(root: Path, make_client: MakeClient, content: bytes) -> None:
    for name in (
        "etc/dnsmasq.d/090_wlan0.conf",
        "etc/dnsmasq.conf",
        "etc/dhcpcd.conf",
        "var/lib/misc/dnsmasq.leases",
    ):
        (root / name).write_bytes(content)
    client = make_client()
    legacy = client.get("/dhcp", headers=AUTH)
    assert legacy.status_code == 200
    assert list(legacy.json()) == LEGACY_KEYS
    api = client.get("/api/v1/dhcp", headers=AUTH)
    assert api.status_code == 200


def test_unreadable_paths_never_give_500(root: Path, make_client: MakeClient) -> None:
    # A folder where a file should be, and a dangling symlink.
    (root / "etc/dhcpcd.conf").unlink()
    (root / "etc/dhcpcd.conf").mkdir()
    (root / "var/lib/misc/dnsmasq.leases").unlink()
    os.symlink("/nonexistent/leases", root / "var/lib/misc/dnsmasq.leases")
    client = make_client()
    assert client.get("/dhcp", headers=AUTH).json()["range_gateway"] == ""
    api = client.get("/api/v1/dhcp", headers=AUTH)
    assert api.status_code == 200
    assert api.json()["leases"] == []
