"""History samples and Prometheus metrics of the hostapd, wireguard and thermal plugins."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.conftest import MakeClient
from tests.hostapd_peer import ScriptedHostapd, ctrl_path, short_root
from tests.test_metrics import samples, scrape, value
from tests.test_thermal import fake_vcgencmd
from tests.test_wireguard import STRAY, Keys, live_dump
from tests.wg_fixture import install_fake_wg

PHONE = "b8:27:eb:4f:12:a3"
LAPTOP = "e4:5f:01:aa:bb:cc"


@pytest.fixture
def root() -> Iterator[Path]:
    yield from short_root()


def history_samples(client: TestClient) -> dict[str, float]:
    """What the history sampler would store now."""
    assert client.portal is not None
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    found: dict[str, float] = client.portal.call(manager.samples)
    return found


def test_hostapd_stations(client: TestClient, root: Path):
    with ScriptedHostapd(ctrl_path(root)) as peer:
        peer.add_station(PHONE)
        peer.add_station(LAPTOP, signal=-71, rx_bytes=5, inactive_msec=40, rx_rate=65)
        found = samples(scrape(client))
        sampled = history_samples(client)
    assert value(found, "hostapd_up") == 1
    assert value(found, "hostapd_stations", interface="wlan0") == 2
    phone = {"interface": "wlan0", "mac": PHONE}
    laptop = {"interface": "wlan0", "mac": LAPTOP}
    assert value(found, "hostapd_station_signal_dbm", **phone) == -48
    assert value(found, "hostapd_station_signal_dbm", **laptop) == -71
    assert value(found, "hostapd_station_receive_bytes_total", **phone) == 10316
    assert value(found, "hostapd_station_receive_bytes_total", **laptop) == 5
    assert value(found, "hostapd_station_transmit_bytes_total", **phone) == 13542
    assert value(found, "hostapd_station_receive_packets_total", **phone) == 93
    assert value(found, "hostapd_station_connected_seconds", **phone) == 1063
    assert value(found, "hostapd_station_inactive_seconds", **laptop) == 0.04
    # hostapd reports rates in 100 kbit/s: 72.0 and 6.5 Mbit/s.
    assert value(found, "hostapd_station_receive_bitrate_bps", **phone) == 72_000_000
    assert value(found, "hostapd_station_receive_bitrate_bps", **laptop) == 6_500_000
    assert value(found, "raspapi_plugin_collect_success", plugin="hostapd", hook="metrics") == 1
    assert sampled["wifi.stations"] == 2
    assert sampled["wifi.wlan0.stations"] == 2


def test_hostapd_not_running(client: TestClient):
    found = samples(scrape(client))
    assert value(found, "hostapd_up") == 0
    assert not any(name.startswith("hostapd_station") for name, _ in found)
    assert not any(name.startswith("wifi.") for name in history_samples(client))


def test_wireguard_peers(make_client: MakeClient, root: Path, tmp_path: Path):
    fake = install_fake_wg(root, tmp_path / "fake")
    keys = Keys(root)
    fake.set_dump(live_dump(keys, phone_age=30))
    client = make_client()
    found = samples(scrape(client))
    sampled = history_samples(client)
    phone = {"interface": "wg0", "public_key": keys.phone_public, "name": "phone"}
    stray = {"interface": "wg0", "public_key": STRAY, "name": ""}
    laptop = {"interface": "wg0", "public_key": keys.laptop_public, "name": "Laptop (Anna's)"}
    assert value(found, "wireguard_interface_up", interface="wg0") == 1
    assert value(found, "wireguard_interface_peers", interface="wg0") == 3
    assert value(found, "wireguard_interface_connected_peers", interface="wg0") == 1
    assert value(found, "wireguard_peer_receive_bytes_total", **phone) == 123456
    assert value(found, "wireguard_peer_transmit_bytes_total", **phone) == 654321
    handshake = value(found, "wireguard_peer_last_handshake_seconds", **phone)
    assert abs(handshake - (time.time() - 30)) < 5
    assert value(found, "wireguard_peer_connected", **phone) == 1
    assert value(found, "wireguard_peer_last_handshake_seconds", **stray) == 0
    assert value(found, "wireguard_peer_connected", **stray) == 0
    # Configured but not live: known to be disconnected, no counters.
    assert value(found, "wireguard_peer_connected", **laptop) == 0
    assert ("wireguard_peer_receive_bytes_total", frozenset(laptop.items())) not in found
    # wg9 is live without a config: its private key never shows.
    assert value(found, "wireguard_interface_peers", interface="wg9") == 0
    text = scrape(client)
    assert all(secret not in text for secret in keys.secrets)
    assert sampled["wireguard.wg0.connected_peers"] == 1
    assert sampled[f"wireguard.wg0.{keys.phone_public}.rx_bytes"] == 123456
    assert sampled[f"wireguard.wg0.{keys.phone_public}.tx_bytes"] == 654321
    assert sampled[f"wireguard.wg0.{STRAY}.rx_bytes"] == 0
    assert not any(keys.laptop_public in name for name in sampled)


def test_wireguard_absent(make_client: MakeClient, root: Path):
    (root / "usr/bin/wg").unlink(missing_ok=True)
    client = make_client(disable=frozenset({"hostapd"}))
    found = samples(scrape(client))
    # No wg: the configured interface is listed, nothing is live.
    assert value(found, "raspapi_plugin_collect_success", plugin="wireguard", hook="metrics") == 1
    assert not any(name == "wireguard_peer_receive_bytes_total" for name, _ in found)


def plugin_families(client: TestClient, prefix: str) -> list[Any]:
    """The families named ``prefix...`` that the plugins' metrics hooks give now."""
    assert client.portal is not None
    manager = client.app.state.runtime.manager  # type: ignore[attr-defined]
    return [f for f in client.portal.call(manager.metrics) if f.name.startswith(prefix)]


def kept(client: TestClient, prefix: str) -> list[Any]:
    """The families named ``prefix...``, once two calls in a row gave the very same
    objects (cached, not rebuilt). A pair of calls may straddle the end of a cache
    period on a loaded machine, so up to ten pairs are tried; a plugin that rebuilds
    its families on every call fails all ten."""
    for _ in range(10):
        first = plugin_families(client, prefix)
        again = plugin_families(client, prefix)
        if first and all(a is b for a, b in zip(first, again, strict=True)):
            return first
    raise AssertionError(f"{prefix} families were rebuilt on every call")


def scraped_until(client: TestClient, check: Callable[[Any], bool]) -> Any:
    """The first /metrics samples that pass ``check``, within 5 s: families are
    served while they refresh, so a scrape may show the last sweep's values."""
    deadline = time.monotonic() + 5
    found = samples(scrape(client))
    while not check(found):
        if time.monotonic() > deadline:
            raise AssertionError("/metrics did not show the refreshed values in 5 s")
        time.sleep(0.05)
        found = samples(scrape(client))
    return found


def refreshed(client: TestClient, prefix: str, before: list[Any]) -> list[Any]:
    """The families once the plugin has refreshed (new objects), within 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = plugin_families(client, prefix)
        if not any(a is b for a, b in zip(now, before, strict=False)):
            return now
        time.sleep(0.05)
    raise AssertionError(f"{prefix} families were not refreshed in 5 s")


def test_hostapd_families_are_kept_until_the_next_sweep(make_client: MakeClient, root: Path):
    client = make_client(cache_ttl=0.2)
    with ScriptedHostapd(ctrl_path(root)) as peer:
        peer.add_station(PHONE)
        # Within the cache period the very same objects: /metrics renders them once.
        first = kept(client, "hostapd_")
        assert len(first) == 11
        peer.add_station(PHONE, rx_bytes=999)
        peer.add_station(LAPTOP)
        after = refreshed(client, "hostapd_", first)
        phone = {"interface": "wlan0", "mac": PHONE}
        found = scraped_until(
            client,
            lambda found: value(found, "hostapd_station_receive_bytes_total", **phone) == 999,
        )
    assert value(found, "hostapd_station_receive_bytes_total", **phone) == 999
    assert value(found, "hostapd_stations", interface="wlan0") == 2
    assert len(after) == 11


def test_wireguard_families_are_kept_until_the_next_refresh(
    make_client: MakeClient, root: Path, tmp_path: Path
):
    fake = install_fake_wg(root, tmp_path / "fake")
    keys = Keys(root)
    fake.set_dump(live_dump(keys, phone_age=30))
    client = make_client(cache_ttl=0.2, disable=frozenset({"hostapd"}))
    first = kept(client, "wireguard_")
    assert len(first) == 7
    fake.set_dump(live_dump(keys, phone_age=30).replace("123456", "777777"))
    refreshed(client, "wireguard_", first)
    phone = {"interface": "wg0", "public_key": keys.phone_public, "name": "phone"}
    found = scraped_until(
        client, lambda found: value(found, "wireguard_peer_receive_bytes_total", **phone) == 777777
    )
    assert value(found, "wireguard_peer_receive_bytes_total", **phone) == 777777


def test_node_families_are_served_while_they_refresh(make_client: MakeClient):
    # Periods long enough that a loaded machine's pauses (a tenth of a second)
    # do not carry the second call past the stale period.
    client = make_client(cache_ttl=0.5)

    def system() -> list[Any]:  # the system plugin's: networking and thermal add more
        others = ("node_network_", "node_thermal_", "node_hwmon_")
        return [f for f in plugin_families(client, "node_") if not f.name.startswith(others)]

    first = system()
    assert "node_load1" in {f.name for f in first}
    assert all(a is b for a, b in zip(first, system(), strict=True))
    time.sleep(0.6)  # past the cache period, within the stale one (2 periods)
    # Answered at once from the last refresh while the next one runs behind it.
    assert all(a is b for a, b in zip(first, system(), strict=True))
    deadline = time.monotonic() + 5
    while all(a is b for a, b in zip(first, system(), strict=True)):
        assert time.monotonic() < deadline, "the node families were not refreshed in 5 s"
        time.sleep(0.05)


THERMAL_FAMILIES = (
    "node_thermal_zone_temp",
    "node_hwmon_temp_celsius",
    "raspapi_throttled",
    "raspapi_throttled_since_boot",
)


def test_thermal_families_are_served_while_they_refresh(make_client: MakeClient, root: Path):
    # A vcgencmd slow to answer (the firmware call, 1 s here): a scrape past the cache
    # period gets the last refresh's families, the same objects, instead of waiting.
    flags = root / "flags"
    flags.write_text("0x0")
    fake_vcgencmd(root, f'sleep 1\necho "throttled=$(cat {flags})"\n')
    # A 1 s period: the stale one ends 2 s after the load, 0.8 s after the sleep
    # below; every call gathers all plugins' families, which under a full CI run
    # took longer than the 0.4 s a 0.5 s period left.
    client = make_client(cache_ttl=1.0, disable=frozenset({"hostapd", "wireguard"}))

    def thermal() -> list[Any]:
        return [f for f in plugin_families(client, "") if f.name in THERMAL_FAMILIES]

    def under_voltage(families: list[Any]) -> float:
        now = {f.name: f for f in families}["raspapi_throttled"]
        found: float = {s.labels["flag"]: s.value for s in now.samples}["under_voltage"]
        return found

    first = thermal()
    assert [f.name for f in first] == list(THERMAL_FAMILIES)
    assert under_voltage(first) == 0
    assert all(a is b for a, b in zip(first, thermal(), strict=True))
    flags.write_text("0x50005")
    time.sleep(1.2)  # past the cache period, within the stale one (2 periods)
    # Answered from the last refresh while vcgencmd runs behind it.
    assert all(a is b for a, b in zip(first, thermal(), strict=True))
    deadline = time.monotonic() + 10
    while under_voltage(thermal()) != 1:
        assert time.monotonic() < deadline, "the thermal families were not refreshed in 10 s"
        time.sleep(0.1)
