"""A config file that did not change is not parsed again on the next refresh (issue 15).

A refresh reads every config in /etc/wireguard; a 500-peer config costs
milliseconds of parsing. ``files.ParseCache`` keeps each file's parse under
its (device, inode, size, modification time), from one stat: a file with any
of them changed is parsed again. Parses are counted by wrapping
``config.parse``, the one parser both the refresh and the control routes use.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from raspapi.plugins.wireguard import config as wgconfig
from raspapi.plugins.wireguard import files

from tests.conftest import AUTH, MakeClient
from tests.wg_fixture import install_fake_wg

API = "/api/v1/wireguard"
#: Well before now, so a file's parse may be kept (files._SETTLE_NS).
LONG_AGO_NS = time.time_ns() - 3600 * 1_000_000_000
LAPTOP = "utgY1tPB/+n0BtBPlpOx93gvjR7I+1KOCQjjn7dJDgg="
#: A peer the fixture's wg0.conf does not have.
TABLET = "ySZpDbtWhvyUv8BsGaSmlVhHgV1XG+zKyYlo9tprLV0="


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The text of every config parsed from now on."""
    parsed: list[str] = []
    real = wgconfig.parse

    def counting(text: str) -> wgconfig.WgConfig:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(wgconfig, "parse", counting)
    return parsed


def settle(path: Path, mtime_ns: int = LONG_AGO_NS) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


def folder(root: Path) -> Path:
    return root / "etc/wireguard"


def read(root: Path, cache: files.ParseCache) -> dict[str, files.ConfigFile]:
    configs: dict[str, files.ConfigFile]
    configs, error = files.read_all(root, folder(root), cache)
    assert error is None
    return configs


def test_an_unchanged_file_is_parsed_once(root: Path, parses: list[str]) -> None:
    for path in folder(root).glob("*.conf"):
        settle(path)
    cache = files.ParseCache()
    first = read(root, cache)
    assert sorted(first) == ["client", "wg0"]
    assert len(parses) == 2
    for _ in range(5):
        again = read(root, cache)
        assert {n: c.config for n, c in again.items()} == {n: c.config for n, c in first.items()}
    assert len(parses) == 2
    # Without a cache every read parses (what a refresh did before).
    files.read_all(root, folder(root))
    assert len(parses) == 4


def test_a_new_modification_time_means_a_new_parse(root: Path, parses: list[str]) -> None:
    wg0 = folder(root) / "wg0.conf"
    settle(wg0)
    settle(folder(root) / "client.conf")
    cache = files.ParseCache()
    read(root, cache)
    # The same size, another name: only the modification time tells.
    wg0.write_text(wg0.read_text().replace("Name = phone", "Name = phon2"))
    settle(wg0, LONG_AGO_NS + 1_000_000_000)
    parses.clear()
    configs = read(root, cache)
    assert configs["wg0"].config.peers[0].name == "phon2"
    assert len(parses) == 1 and "phon2" in parses[0]
    read(root, cache)
    assert len(parses) == 1


def test_a_new_size_means_a_new_parse(root: Path, parses: list[str]) -> None:
    wg0 = folder(root) / "wg0.conf"
    settle(wg0)
    settle(folder(root) / "client.conf")
    cache = files.ParseCache()
    read(root, cache)
    # The modification time put back as it was: only the size tells.
    wg0.write_text(wg0.read_text() + f"\n[Peer]\nPublicKey = {TABLET}\nAllowedIPs = 10.8.2.9/32\n")
    settle(wg0)
    parses.clear()
    configs = read(root, cache)
    assert [p.public_key for p in configs["wg0"].config.peers][-1] == TABLET
    assert len(parses) == 1


def test_a_file_replaced_by_another_of_the_same_size_and_time_is_parsed(
    root: Path, parses: list[str]
) -> None:
    wg0 = folder(root) / "wg0.conf"
    settle(wg0)
    settle(folder(root) / "client.conf")
    cache = files.ParseCache()
    read(root, cache)
    # As atomic_write and editors do: a new file renamed over the old one (a new inode).
    new = folder(root) / ".wg0.conf.new"
    new.write_text(wg0.read_text().replace("Name = phone", "Name = phon3"))
    settle(new)
    new.replace(wg0)
    parses.clear()
    assert read(root, cache)["wg0"].config.peers[0].name == "phon3"
    assert len(parses) == 1


def test_a_file_changed_just_now_is_parsed_until_it_settles(root: Path, parses: list[str]) -> None:
    # A second write within the file system's clock tick could keep size and
    # time: a parse of a file younger than the settle time is never reused.
    settle(folder(root) / "client.conf")
    wg0 = folder(root) / "wg0.conf"
    wg0.write_text(wg0.read_text())
    cache = files.ParseCache()
    read(root, cache)
    read(root, cache)
    assert [t for t in parses if "Name = phone" in t] == [wg0.read_text()] * 2
    settle(wg0)
    parses.clear()
    read(root, cache)
    read(root, cache)
    assert len(parses) == 1


def test_the_cache_holds_the_files_of_the_last_read_only(root: Path, parses: list[str]) -> None:
    for path in folder(root).glob("*.conf"):
        settle(path)
    cache = files.ParseCache()
    read(root, cache)
    assert len(cache) == 2
    (folder(root) / "client.conf").unlink()
    assert sorted(read(root, cache)) == ["wg0"]
    assert len(cache) == 1
    # A link is one entry, under the file it points to (RaspAP's wg0.conf -> profile).
    (folder(root) / "wg0.conf").rename(folder(root) / "profile.conf")
    (folder(root) / "wg0.conf").symlink_to("/etc/wireguard/profile.conf")
    parses.clear()
    assert sorted(read(root, cache)) == ["wg0"]
    assert len(cache) == 1 and len(parses) == 1
    os.rename(folder(root), root / "etc/wireguard.gone")
    assert read(root, cache) == {}
    assert len(cache) == 0


def test_refreshes_parse_only_a_changed_config(
    make_client: MakeClient, loop_name: str, root: Path, tmp_path: Path, parses: list[str]
) -> None:
    """Through the app: refreshes every request (cache period 0) parse nothing
    until wg0.conf changes, then parse it alone, once it shows the change."""
    for path in folder(root).glob("*.conf"):
        settle(path)
    fake = install_fake_wg(root, tmp_path / "fake")
    fake.set_dump("")
    client = make_client(loop=loop_name, cache_ttl=0)
    deadline = time.monotonic() + 10
    while fake.calls().count("show all dump") < 5 and time.monotonic() < deadline:
        assert client.get(API, headers=AUTH).status_code == 200
        time.sleep(0.02)
    assert fake.calls().count("show all dump") >= 5
    assert sorted(t.splitlines()[0] for t in parses) == [
        "# RaspAP WireGuard server (written by the GUI, then edited by hand)",
        "[Interface]",
    ]
    parses.clear()
    wg0 = folder(root) / "wg0.conf"
    wg0.write_text(wg0.read_text() + f"\n[Peer]\nPublicKey = {TABLET}\nAllowedIPs = 10.8.2.9/32\n")
    settle(wg0, LONG_AGO_NS + 1_000_000_000)
    keys: list[str] = []
    while TABLET not in keys and time.monotonic() < deadline:
        peers = client.get(f"{API}/wg0", headers=AUTH).json()["peers"]
        keys = [p["public_key"] for p in peers]
        time.sleep(0.02)
    assert TABLET in keys and LAPTOP in keys
    calls = fake.calls().count("show all dump")
    while fake.calls().count("show all dump") < calls + 3 and time.monotonic() < deadline:
        assert client.get(API, headers=AUTH).status_code == 200
        time.sleep(0.02)
    assert fake.calls().count("show all dump") >= calls + 3
    assert len(parses) == 1 and TABLET in parses[0]
