"""The wg-quick config parser and rewriter, and the ``wg show all dump`` parser."""

from __future__ import annotations

import pytest
from raspapi.plugins.wireguard import config, peers
from raspapi.plugins.wireguard.dump import parse_dump

from raspapi.http.errors import Invalid
from tests.conftest import FIXTURE_ROOT

K1 = "iT7Vuq41jPTvv3dQLBbcZpbfRBxclV2YUk7iHh1yNkQ="
K2 = "utgY1tPB/+n0BtBPlpOx93gvjR7I+1KOCQjjn7dJDgg="
K3 = "C2ElVC1VR6xDX4u4MWBLfZ31OtH4hWTNCBz772tadh4="

SERVER = f"""\
# top comment ### with hashes
[Interface]
Address = 10.0.0.1/24, fd00::1/64
ListenPort = 51820 # trailing comment
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
#   endpoint: vpn.example.org:4500
PostUp = echo "a # b"
UnknownKey = kept

### begin phone ###
[Peer]
PublicKey = {K1}
AllowedIPs = 10.0.0.2/32
### end phone ###

# some note
# Name = tablet
[Peer]
PublicKey = {K2}
allowedips = 10.0.0.3/32
AllowedIPs = 10.0.0.4/32
Endpoint = [2001:db8::1]:51820
PersistentKeepalive = 25
PresharedKey = 0vKD4NxYVgAyDBNWPSzp0cLpvR4OfLXlrclbv/MvX6g=

[peer]
# NAME: laptop = old
PublicKey = {K3}
"""


def test_parse_reads_keys_comments_and_names() -> None:
    cfg = config.parse(SERVER)
    assert cfg.text == SERVER
    assert cfg.interface is not None
    assert cfg.interface.addresses == ["10.0.0.1/24", "fd00::1/64"]
    assert cfg.interface.listen_port == 51820
    assert cfg.interface.endpoint_hint == "vpn.example.org:4500"
    assert "PrivateKey" not in repr(cfg.interface)
    assert [(p.public_key, p.name) for p in cfg.peers] == [
        (K1, "phone"),
        (K2, "tablet"),
        (K3, "laptop = old"),
    ]
    tablet = cfg.peers[1]
    assert tablet.allowed_ips == ["10.0.0.3/32", "10.0.0.4/32"]
    assert tablet.endpoint == "[2001:db8::1]:51820"
    assert tablet.persistent_keepalive == 25
    assert tablet.has_preshared_key
    assert not cfg.peers[0].has_preshared_key


def test_name_inside_the_section_wins_over_the_one_above() -> None:
    text = (
        "[Interface]\n# Name = iface\n\n"
        f"# Name = above\n[Peer]\n# Name = inside\nPublicKey = {K1}\n"
    )
    assert config.parse(text).peers[0].name == "inside"
    # A blank line cuts a comment off from the header below it.
    text = f"[Interface]\n# Name = detached\n\n[Peer]\nPublicKey = {K1}\n"
    assert config.parse(text).peers[0].name is None


def test_add_then_remove_gives_back_the_same_bytes() -> None:
    keys = peers.KeyMaterial("priv", "iXBzZZfHC8QvdGqHUwFUVoVgs7ubsT3UOCU/vXoPiHY=", "psk")
    cfg = config.parse(SERVER)
    added = cfg.with_peer(peers.server_block("new one", keys, ["10.0.0.9/32"]))
    assert added.startswith(SERVER)
    again = config.parse(added)
    assert again.peers[-1].name == "new one"
    assert again.peers[-1].public_key == keys.public_key
    assert again.without_peer(keys.public_key) == SERVER
    assert again.without_peer(K1 + "x") is None


def test_removing_the_last_peer_takes_the_blank_lines_before_it() -> None:
    removed = config.parse(SERVER).without_peer(K3)
    assert removed == SERVER[: SERVER.index("\n\n[peer]") + 1]


def test_removing_a_middle_peer_keeps_everything_else_byte_for_byte() -> None:
    removed = config.parse(SERVER).without_peer(K2)
    start = SERVER.index("# some note")
    end = SERVER.index("[peer]")
    assert removed == SERVER[:start] + SERVER[end:]


def test_pivpn_block_is_removed_whole() -> None:
    removed = config.parse(SERVER).without_peer(K1)
    start = SERVER.index("### begin phone")
    end = SERVER.index("# some note")
    assert removed == SERVER[:start] + SERVER[end:]


def test_crlf_and_bytes_that_are_not_utf8_survive() -> None:
    from raspapi.plugins.wireguard.files import decode, encode

    raw = b"[Interface]\r\nAddress = 10.1.0.1/24\r\n# caf\xe9 latin-1 comment\r\n"
    cfg = config.parse(decode(raw))
    assert cfg.newline == "\r\n"
    keys = peers.KeyMaterial("priv", K1, "psk")
    added = encode(cfg.with_peer(peers.server_block("p", keys, ["10.1.0.2/32"])))
    assert added.startswith(raw)
    assert b"\r\n[Peer]\r\n# Name = p\r\n" in added
    assert encode(config.parse(decode(added)).without_peer(K1) or "") == raw


def test_file_without_final_newline() -> None:
    text = "[Interface]\nAddress = 10.1.0.1/24"
    keys = peers.KeyMaterial("priv", K1, "psk")
    added = config.parse(text).with_peer(peers.server_block("p", keys, ["10.1.0.2/32"]))
    assert added.startswith(text + "\n\n[Peer]\n")
    assert config.parse(added).peers[0].public_key == K1


def test_fixture_config_round_trips() -> None:
    raw = (FIXTURE_ROOT / "etc/wireguard/wg0.conf").read_bytes()
    from raspapi.plugins.wireguard.files import decode, encode

    assert encode(config.parse(decode(raw)).text) == raw


# -- wg show all dump ----------------------------------------------------------

DUMP = (
    "wg0\tPRIVATEKEYPRIVATEKEYPRIVATEKEYPRIVATEKEY00=\t"
    f"{K3}\t51820\toff\n"
    f"wg0\t{K1}\t(none)\t192.0.2.5:40000\t10.0.0.2/32,fd00::2/128\t1700000000\t1024\t2048\t25\n"
    f"wg0\t{K2}\tPSKPSKPSKPSKPSKPSKPSKPSKPSKPSKPSKPSKPSKPSK0=\t(none)\t(none)\t0\t0\t0\toff\n"
    "wg1\tPRIV\t(none)\t0\t0x1f\n"
    "garbage line\n"
)


def test_dump_parser_drops_secrets() -> None:
    interfaces = parse_dump(DUMP)
    assert list(interfaces) == ["wg0", "wg1"]
    wg0 = interfaces["wg0"]
    assert (wg0.public_key, wg0.listen_port, wg0.fwmark) == (K3, 51820, None)
    first, second = wg0.peers
    assert first.endpoint == "192.0.2.5:40000"
    assert first.allowed_ips == ["10.0.0.2/32", "fd00::2/128"]
    assert (first.latest_handshake, first.rx_bytes, first.tx_bytes) == (1700000000, 1024, 2048)
    assert first.persistent_keepalive == 25 and not first.has_preshared_key
    assert second.endpoint is None and second.allowed_ips == [] and second.latest_handshake is None
    assert second.has_preshared_key and second.persistent_keepalive is None
    assert interfaces["wg1"].fwmark == 0x1F and interfaces["wg1"].public_key is None
    assert "PRIVATE" not in repr(interfaces) and "PSKPSK" not in repr(interfaces)


# -- input checks and allocation ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [K2, K2.replace("+", "-").replace("/", "_"), K2.rstrip("="), " " + K2],
)
def test_public_key_forms(raw: str) -> None:
    assert peers.public_key(raw) == K2


@pytest.mark.parametrize("raw", ["", "abc", K2[:-2] + "==", K2 + "A", "!" * 44, K2[:-2] + "B="])
def test_bad_public_keys(raw: str) -> None:
    with pytest.raises(Invalid):
        peers.public_key(raw)


def test_allocation_skips_server_peers_and_foreign_routes() -> None:
    got = peers.allocate(
        ["10.0.0.1/24", "fd00::1/64"],
        ["10.0.0.2/32", "10.0.0.4/31", "0.0.0.0/0", "fd00::2/128", "192.168.1.0/24"],
    )
    assert [str(a) for a in got] == ["10.0.0.3/32", "fd00::3/128"]


def test_allocation_full_subnet_and_missing_address() -> None:
    with pytest.raises(peers.AllocationError, match="no free address"):
        peers.allocate(["10.0.0.1/30"], ["10.0.0.2/32"])
    with pytest.raises(peers.AllocationError, match="no usable Address"):
        peers.allocate([], [])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("vpn.example.org", ("vpn.example.org", None)),
        ("vpn.example.org:51820", ("vpn.example.org", 51820)),
        ("[2001:db8::1]:4500", ("2001:db8::1", 4500)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("192.0.2.1", ("192.0.2.1", None)),
    ],
)
def test_endpoints(raw: str, expected: tuple[str, int | None]) -> None:
    assert peers.endpoint(raw) == expected


@pytest.mark.parametrize("raw", ["a b", "x:0", "x:99999", "host\nPostUp = rm", "[::1", "-bad-"])
def test_bad_endpoints(raw: str) -> None:
    with pytest.raises(Invalid):
        peers.endpoint(raw)
