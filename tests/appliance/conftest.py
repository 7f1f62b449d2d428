"""Fixtures of the appliance suite: a booted Debian machine with raspapi installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.appliance.machine import Machine, booted, host_arch
from tests.conftest import FIXTURE_ROOT

HOSTAPD_CONF = (
    (FIXTURE_ROOT / "etc/hostapd/hostapd.conf").read_text().replace("driver=nl80211", "driver=none")
)
DNSMASQ_CONF = (
    "interface=wlan0\nbind-dynamic\ndhcp-range=10.3.141.50,10.3.141.254,255.255.255.0,12h\n"
)
DHCPCD_CONF = (
    "hostname\ninterface wlan0\nstatic ip_address=10.3.141.1/24\n"
    "static routers=10.3.141.1\nstatic domain_name_server=1.1.1.1 8.8.8.8\n"
)
#: Two stations of the hotspot, leases expiring far in the future.
LEASES = (
    "4102444800 aa:bb:cc:00:00:01 10.3.141.61 phone 01:aa:bb:cc:00:00:01\n"
    "4102444800 aa:bb:cc:00:00:02 10.3.141.62 laptop *\n"
)
WG_SUBNET = "10.8.0"


def install(m: Machine, wheel: Path, *extra: str) -> str:
    """``installer.sh --yes`` from the checkout's files, offline from the wheelhouse."""
    done = m.run(
        ["/root/raspapi/installer.sh", "--yes", "--wheel", str(wheel),
         "--wheelhouse", str(wheel.parent), *extra],
        timeout=600,
    )  # fmt: skip
    return done.stdout


def raspap_like(m: Machine, wired: bool = True) -> None:
    """What RaspAP leaves on a Pi: hostapd running (driver=none), dnsmasq's files,
    wg0 through wg-quick@wg0 (wireguard-go), OpenVPN client profiles; with
    ``wired``, a wired station (qemu-user cannot create the veth pair it needs)."""
    m.path("/etc/hostapd/hostapd.conf").write_text(HOSTAPD_CONF)
    m.sh("systemctl unmask hostapd.service && systemctl enable --now hostapd.service")
    m.path("/etc/dnsmasq.d/090_wlan0.conf").write_text(DNSMASQ_CONF)
    m.path("/etc/dhcpcd.conf").write_text(DHCPCD_CONF)
    m.sh("systemctl stop dnsmasq.service")
    m.path("/var/lib/misc/dnsmasq.leases").write_text(LEASES)
    m.sh("systemctl start dnsmasq.service")
    # A wired station with a lease: the laptop, in the AP side's neighbour table.
    if wired:
        m.sh(
            "ip link add eth1 type veth peer name eth1-peer && ip link set eth1 up && "
            "ip link set eth1-peer up && ip address add 10.3.141.1/24 dev eth1 && "
            "ip neigh replace 10.3.141.62 lladdr aa:bb:cc:00:00:02 dev eth1 nud permanent"
        )
    private = m.run(["wg", "genkey"]).stdout.strip()
    conf = m.path("/etc/wireguard/wg0.conf")
    conf.write_text(
        f"[Interface]\nAddress = {WG_SUBNET}.1/24\nListenPort = 51820\nPrivateKey = {private}\n"
    )
    conf.chmod(0o600)
    dropin = m.path("/etc/systemd/system/wg-quick@.service.d/userspace.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nEnvironment=WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go\n")
    m.sh("systemctl daemon-reload && systemctl enable --now wg-quick@wg0.service")
    m.sh("cp -a /root/raspapi/openvpn/. /etc/openvpn/client/")


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, Path]]:
    """The host's architecture: booted, RaspAP-like, raspapi not yet installed."""
    arch = host_arch()
    with booted(arch, tmp_path_factory.mktemp(f"appliance-{arch}")) as (m, wheel):
        raspap_like(m)
        yield m, wheel


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Machine, Path]]:
    """64-bit Raspberry Pi OS's architecture, emulated (qemu-user-static): booted,
    RaspAP-like, raspapi not yet installed."""
    with booted("arm64", tmp_path_factory.mktemp("appliance-arm64")) as (m, wheel):
        raspap_like(m, wired=False)
        yield m, wheel
