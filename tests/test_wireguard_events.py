"""WireGuard handshakes reach GET /api/v1/events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MakeClient
from tests.test_events import Stream
from tests.test_wireguard import Keys, live_dump
from tests.wg_fixture import FakeWg, install_fake_wg


@pytest.fixture
def fake_wg(root: Path, tmp_path: Path) -> FakeWg:
    return install_fake_wg(root, tmp_path / "fake")


@pytest.fixture
def streams() -> Iterator[list[Stream]]:
    opened: list[Stream] = []
    yield opened
    for stream in opened:
        stream.close()


def test_a_new_handshake_and_a_lost_peer_are_published(
    root: Path, make_client: MakeClient, fake_wg: FakeWg, streams: list[Stream]
):
    keys = Keys(root)
    fake_wg.set_dump(live_dump(keys, phone_age=30))
    client = make_client(events_interval=0.05, cache_ttl=0)
    stream = Stream(client).start()
    streams.append(stream)
    assert stream.next()[0] == "snapshot"

    # A fresher handshake: the phone talked again.
    fake_wg.set_dump(live_dump(keys, phone_age=2))
    kind, data = stream.until(lambda k, d: k == "wireguard.handshake")
    assert data["interface"] == "wg0"
    assert data["public_key"] == keys.phone_public
    assert data["name"] == "phone"
    assert data["latest_handshake_at"]

    # Ten minutes without a handshake: no longer connected.
    fake_wg.set_dump(live_dump(keys, phone_age=600))
    kind, data = stream.until(lambda k, d: k.startswith("wireguard.peer."))
    assert kind == "wireguard.peer.disconnected"
    assert data["public_key"] == keys.phone_public
    for secret in keys.secrets:
        assert secret not in str(data)
