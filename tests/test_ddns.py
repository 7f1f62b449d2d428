"""The ddns plugin: ddclient.conf read like ddclient reads it; the password for admins only."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from raspapi.security.auth import Principal
from tests.conftest import AUTH, MakeClient

CONF = "etc/ddclient.conf"
LEGACY_KEYS = ["use", "method", "protocol", "server", "login", "password", "domain"]
PASSWORD = "s3cr#t pass"
#: A key that is not the admin key, with the read scope only.
READER_KEY = "r" * 32
READER = {"access_token": READER_KEY}


def add_reader(client: TestClient) -> None:
    """Give the app a read-only key through the core's key lookup hook (where
    scoped keys will plug in), so the real guard authenticates a non-admin."""
    reader = Principal("dashboard", frozenset({"read"}))
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    runtime.auth.lookups.append(lambda key: reader if key == READER_KEY else None)


def ddns(root: Path, make_client: MakeClient, text: str) -> dict[str, str]:
    (root / CONF).write_text(text)
    r = make_client().get("/ddns", headers=AUTH)
    assert r.status_code == 200
    body: dict[str, str] = r.json()
    assert list(body) == LEGACY_KEYS
    return body


def test_legacy_ddns_answers_raspap_shape_to_admin(client: TestClient) -> None:
    r = client.get("/ddns", headers=AUTH)
    assert r.status_code == 200
    assert list(r.json()) == LEGACY_KEYS
    assert r.json() == {
        "use": "web",
        # The value of the setting `use` names (web=), not the next line's.
        "method": "checkip.dyndns.org/",
        "protocol": "dyndns2",
        "server": "members.dyndns.org",
        "login": "raspap-user",
        "password": PASSWORD,
        "domain": "raspap.example.net",
    }


def test_password_is_hidden_from_a_non_admin_key(client: TestClient) -> None:
    add_reader(client)
    r = client.get("/ddns", headers=READER)
    assert r.status_code == 200
    assert r.json()["password"] == ""
    assert r.json()["login"] == "raspap-user"
    assert "s3cr" not in r.text

    api = client.get("/api/v1/ddns", headers=READER)
    assert api.status_code == 200
    assert api.json()["password"] is None
    assert api.json()["password_set"] is True
    assert "s3cr" not in api.text

    # The same app still shows it to the admin key.
    assert client.get("/api/v1/ddns", headers=AUTH).json()["password"] == PASSWORD


def test_unknown_key_gets_raspap_403(client: TestClient) -> None:
    r = client.get("/ddns", headers=READER)
    assert r.status_code == 403
    assert r.json() == {"detail": "403: Unauthorized"}


def test_api_ddns(client: TestClient) -> None:
    r = client.get("/api/v1/ddns", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {
        "config_file": "/etc/ddclient.conf",
        "use": "web",
        "method": "checkip.dyndns.org/",
        "protocol": "dyndns2",
        "server": "members.dyndns.org",
        "login": "raspap-user",
        "password": PASSWORD,
        "password_set": True,
        "hosts": ["raspap.example.net"],
    }


def test_absent_file(root: Path, make_client: MakeClient) -> None:
    (root / CONF).unlink()
    client = make_client()
    r = client.get("/ddns", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == dict.fromkeys(LEGACY_KEYS, "")
    api = client.get("/api/v1/ddns", headers=AUTH)
    assert api.status_code == 503
    assert "no /etc/ddclient.conf" in api.json()["detail"]


def test_unreadable_file_is_unavailable(root: Path, make_client: MakeClient) -> None:
    (root / CONF).unlink()
    (root / CONF).mkdir()
    client = make_client()
    assert client.get("/ddns", headers=AUTH).json() == dict.fromkeys(LEGACY_KEYS, "")
    api = client.get("/api/v1/ddns", headers=AUTH)
    assert api.status_code == 503
    assert "cannot read /etc/ddclient.conf" in api.json()["detail"]


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "\\\n"])
def test_empty_file(root: Path, make_client: MakeClient, text: str) -> None:
    assert ddns(root, make_client, text) == dict.fromkeys(LEGACY_KEYS, "")


def test_one_setting_a_line_as_raspap_writes(root: Path, make_client: MakeClient) -> None:
    body = ddns(
        root,
        make_client,
        "use=web\nweb=checkip.dyndns.org\nprotocol=dyndns2\nserver=domains.google.com\n"
        "login=bob\npassword=hunter2\nhome.example.com\n",
    )
    assert body == {
        "use": "web",
        "method": "checkip.dyndns.org",
        "protocol": "dyndns2",
        "server": "domains.google.com",
        "login": "bob",
        "password": "hunter2",
        "domain": "home.example.com",
    }


def test_continuation_lines_and_host_lists(root: Path, make_client: MakeClient) -> None:
    body = ddns(
        root,
        make_client,
        "use=if, if=eth0\n"
        "protocol=namecheap,          \\\n"
        "  server=dynamicdns.park-your-domain.com, \\\n"
        "  login=example.com, password=abc \\\n"
        "  @ , www\n",
    )
    assert body == {
        "use": "if",
        "method": "eth0",
        "protocol": "namecheap",
        "server": "dynamicdns.park-your-domain.com",
        "login": "example.com",
        "password": "abc",
        "domain": "@,www",
    }


def test_comments_and_quotes(root: Path, make_client: MakeClient) -> None:
    body = ddns(
        root,
        make_client,
        "# password=old-one\n"
        "protocol=cloudflare   # the provider\n"
        "zone=example.com\n"
        "login=token\n"
        "password=p#ss\\ word  # unquoted: a # inside a word is no comment\n"
        "host.example.com\n",
    )
    assert (body["protocol"], body["login"], body["password"]) == (
        "cloudflare",
        "token",
        "p#ss word",
    )
    quoted = ddns(root, make_client, 'login="a b", password="x\\"y,z"\nh.example.com\n')
    assert (quoted["login"], quoted["password"], quoted["domain"]) == (
        "a b",
        'x"y,z',
        "h.example.com",
    )


def test_settings_on_the_host_line(root: Path, make_client: MakeClient) -> None:
    # ddclient's one-line form, and the old "host login password" form.
    body = ddns(
        root,
        make_client,
        "usev4=webv4, webv4=ipify-ipv4\n"
        "protocol=dyndns2, server=members.dyndns.org first.example.com olduser oldpass\n"
        "protocol=noip second.example.com\n",
    )
    assert body == {
        "use": "webv4",
        "method": "ipify-ipv4",
        "protocol": "dyndns2",
        "server": "members.dyndns.org",
        "login": "olduser",
        "password": "oldpass",
        "domain": "first.example.com,second.example.com",
    }


def test_host_setting_and_later_globals(root: Path, make_client: MakeClient) -> None:
    body = ddns(
        root,
        make_client,
        "login=first\nhost=a.example.com\nlogin=second\nc.example.com\n",
    )
    # Globals set after a host line do not change that host's settings.
    assert (body["login"], body["domain"]) == ("first", "a.example.com,c.example.com")


@pytest.mark.parametrize(
    "text",
    [
        "=oops\n===\n,,,\n",
        "password='never closed\nhost.example.com\n",
        "use=web\n",  # web= missing: method is ""
        "\x00\xff garbage \x80\n" * 50,
        "a" * 200_000 + "\n",
        "x=\\" + "\\" * 10_000 + "\n",
    ],
)
def test_malformed_files_never_give_500(root: Path, make_client: MakeClient, text: str) -> None:
    (root / CONF).write_text(text, errors="surrogateescape")
    client = make_client()
    r = client.get("/ddns", headers=AUTH)
    assert r.status_code == 200
    assert list(r.json()) == LEGACY_KEYS
    assert all(isinstance(v, str) for v in r.json().values())
    assert client.get("/api/v1/ddns", headers=AUTH).status_code == 200
