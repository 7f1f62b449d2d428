"""The firewall plugin: RaspAP's iptables_rules.json as it is; clear JSON errors otherwise."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, FIXTURE_ROOT, MakeClient

RULES = "etc/raspap/networking/firewall/iptables_rules.json"


def fixture_rules() -> object:
    return json.loads((FIXTURE_ROOT / RULES).read_text())


def test_legacy_firewall_returns_the_file(client: TestClient) -> None:
    r = client.get("/firewall", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    expected = fixture_rules()
    assert r.json() == expected
    assert isinstance(expected, dict)
    assert list(r.json()) == list(expected)  # key order kept
    assert r.json()["pre_rules"][0]["fw-state"] is True


def test_api_firewall(client: TestClient) -> None:
    r = client.get("/api/v1/firewall", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["rules_file", "modified_at", "size_bytes", "rules"]
    assert body["rules_file"] == "/etc/raspap/networking/firewall/iptables_rules.json"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["modified_at"])
    assert body["size_bytes"] == (FIXTURE_ROOT / RULES).stat().st_size
    assert body["rules"] == fixture_rules()


def test_absent_file_is_a_json_404(root: Path, make_client: MakeClient) -> None:
    (root / RULES).unlink()
    client = make_client()
    r = client.get("/firewall", headers=AUTH)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["code"] == "rules_not_found"
    assert "/etc/raspap/networking/firewall/iptables_rules.json does not exist" in body["detail"]
    api = client.get("/api/v1/firewall", headers=AUTH)
    assert api.status_code == 503
    assert "does not exist" in api.json()["detail"]


def test_missing_folder_is_a_json_404(root: Path, make_client: MakeClient) -> None:
    (root / RULES).unlink()
    (root / RULES).parent.rmdir()
    assert make_client().get("/firewall", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not valid JSON"),
        (b'{"pre_rules": [}', "not valid JSON: Expecting value (line 1, column 16)"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"a": "' + b"x" * (5 * 1024 * 1024) + b'"}', "larger than"),
    ],
)
def test_malformed_file_is_a_json_503(
    root: Path, make_client: MakeClient, content: bytes, problem: str
) -> None:
    (root / RULES).write_bytes(content)
    client = make_client()
    r = client.get("/firewall", headers=AUTH)
    assert r.status_code == 503
    body = r.json()
    assert body["code"] == "invalid_config"
    assert problem in body["detail"]
    api = client.get("/api/v1/firewall", headers=AUTH)
    assert api.status_code == 503
    assert problem in api.json()["detail"]
    ready = client.get("/ready", headers=AUTH).json()["plugins"]["firewall"]
    assert ready["state"] == "unavailable"


def test_folder_or_fifo_in_place_of_the_file(root: Path, make_client: MakeClient) -> None:
    (root / RULES).unlink()
    (root / RULES).mkdir()
    r = make_client().get("/firewall", headers=AUTH)
    assert r.status_code == 503
    assert "not a regular file" in r.json()["detail"]
    (root / RULES).rmdir()
    os.mkfifo(root / RULES)
    r = make_client().get("/firewall", headers=AUTH)
    assert r.status_code == 503


def test_any_json_value_is_returned_as_it_is(root: Path, make_client: MakeClient) -> None:
    (root / RULES).write_text('\ufeff[1, "ü", {"z": null, "a": 2.5}]')
    r = make_client().get("/firewall", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == [1, "ü", {"z": None, "a": 2.5}]


def test_a_fixed_file_is_served_again(root: Path, make_client: MakeClient) -> None:
    (root / RULES).write_text("{broken")
    client = make_client(cache_ttl=0)
    assert client.get("/firewall", headers=AUTH).status_code == 503
    (root / RULES).write_text('{"order": []}')
    r = client.get("/firewall", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"order": []}


def test_needs_the_key(client: TestClient) -> None:
    r = client.get("/firewall")
    assert r.status_code == 403
    assert r.json() == {"detail": "403: Unauthorized"}
