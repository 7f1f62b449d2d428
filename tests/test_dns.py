"""The dns plugin: ad-block lists, upstream servers and dnsmasq's log, on a fixture root."""

from __future__ import annotations

import os
import time
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.conftest import AUTH, MakeClient

DOMAINS = "etc/raspap/adblock/domains.txt"
HOSTNAMES = "etc/raspap/adblock/hostnames.txt"
LOG = "var/log/dnsmasq.log"
RESOLV = "run/dnsmasq/resolv.conf"


def write_big_list(path: Path, lines: int, line: str) -> None:
    with open(path, "w") as fh:
        for start in range(0, lines, 10_000):
            fh.write("".join(line.format(i=i) for i in range(start, min(start + 10_000, lines))))


# -- the lists ------------------------------------------------------------------------


def test_domains_answer_the_intended_shape(client: TestClient) -> None:
    r = client.get("/dns/domains", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    # Comments and a line that is no directive are skipped; one line may name two
    # domains; the IPv4 and IPv6 entries of one domain give it once.
    assert r.json() == {
        "domains": [
            "0-2u.com",
            "ads.example.net",
            "track.example.org",
            "tracker.example.org",
            "metrics.example.io",
        ]
    }


def test_hostnames_answer_the_intended_shape(client: TestClient) -> None:
    r = client.get("/dns/hostnames", headers=AUTH)
    assert r.status_code == 200
    # localhost (the list's header) is not a blocked name; "0.0.0.0" alone is no entry.
    assert r.json() == {
        "hostnames": [
            "ads.doubleclick.example",
            "pagead.example.com",
            "adservice.example.com",
            "telemetry.example.org",
        ]
    }


def test_other_blocklist_syntaxes(root: Path, make_client: MakeClient) -> None:
    (root / DOMAINS).write_text(
        "local=/oisd.example/\n"
        "server=/nxdomain.example/\n"
        "  address=/spaced.example/0.0.0.0   # trailing comment\n"
        "address=/#/\n"  # every domain: not a name
        "address=/unterminated.example\n"
        "# address=/commented.example/0.0.0.0\n"
        "address=/ünïcode.example/0.0.0.0\n"
        'address=/quote"d.example/0.0.0.0\n'
    )
    r = make_client().get("/dns/domains", headers=AUTH)
    assert r.json() == {
        "domains": [
            "oisd.example",
            "nxdomain.example",
            "spaced.example",
            "ünïcode.example",
            'quote"d.example',
        ]
    }


@pytest.mark.parametrize("path", ["/dns/domains", "/dns/hostnames"])
def test_lists_absent_give_empty_lists(root: Path, make_client: MakeClient, path: str) -> None:
    (root / DOMAINS).unlink()
    (root / HOSTNAMES).unlink()
    r = make_client().get(path, headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {path.rsplit("/", 1)[1]: []}


@pytest.mark.parametrize("content", [b"", b"\n\n# only comments\n", b"\x00\xff\x80garbage\n" * 50])
def test_lists_empty_or_garbage_give_empty_lists(
    root: Path, make_client: MakeClient, content: bytes
) -> None:
    (root / DOMAINS).write_bytes(content)
    (root / HOSTNAMES).write_bytes(content)
    client = make_client()
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": []}
    assert client.get("/dns/hostnames", headers=AUTH).json() == {"hostnames": []}
    page = client.get("/api/v1/dns/domains", headers=AUTH).json()
    assert (page["total"], page["domains"]) == (0, [])


def test_overlong_lines_are_skipped(root: Path, make_client: MakeClient) -> None:
    (root / DOMAINS).write_text(
        "address=/ok1.example/0.0.0.0\n"
        f"address=/{'x' * 100_000}.example/0.0.0.0\n"
        "address=/ok2.example/0.0.0.0"  # no final newline
    )
    r = make_client().get("/dns/domains", headers=AUTH)
    assert r.json() == {"domains": ["ok1.example", "ok2.example"]}


def test_huge_lists_are_served_and_paged(root: Path, make_client: MakeClient) -> None:
    write_big_list(root / DOMAINS, 300_000, "address=/ads{i}.example.com/0.0.0.0\n")
    write_big_list(root / HOSTNAMES, 300_000, "0.0.0.0 track{i}.example.net\n")
    client = make_client()

    r = client.get("/dns/domains", headers=AUTH)
    assert r.status_code == 200
    domains = r.json()["domains"]
    assert len(domains) == 300_000
    assert domains[0] == "ads0.example.com"
    assert domains[-1] == "ads299999.example.com"
    hostnames = client.get("/dns/hostnames", headers=AUTH).json()["hostnames"]
    assert len(hostnames) == 300_000
    assert hostnames[123_456] == "track123456.example.net"

    page = client.get("/api/v1/dns/domains?offset=299990&limit=100", headers=AUTH).json()
    assert page == {
        "total": 300_000,
        "offset": 299_990,
        "limit": 100,
        "truncated": False,
        "domains": [f"ads{i}.example.com" for i in range(299_990, 300_000)],
    }
    first = client.get("/api/v1/dns/hostnames", headers=AUTH).json()
    assert first["limit"] == 1000
    assert first["hostnames"] == [f"track{i}.example.net" for i in range(1000)]
    beyond = client.get("/api/v1/dns/domains?offset=300000", headers=AUTH).json()
    assert (beyond["total"], beyond["domains"]) == (300_000, [])

    # Once parsed, a request costs next to nothing.
    started = time.perf_counter()
    for _ in range(20):
        assert client.get("/dns/domains", headers=AUTH).status_code == 200
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=1.5", "limit"),
    ],
)
def test_paging_is_validated(client: TestClient, query: str, field: str) -> None:
    r = client.get(f"/api/v1/dns/domains?{query}", headers=AUTH)
    assert r.status_code == 422
    assert r.json()["field"] == field


def test_lists_are_parsed_once_per_change(root: Path, make_client: MakeClient) -> None:
    path = root / DOMAINS
    path.write_text("address=/first.example/0.0.0.0\n")
    client = make_client(cache_ttl=0)
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": ["first.example"]}
    before = path.stat()

    # Same size, same inode, same mtime: the file counts as unchanged, so the
    # parse done before is served (the file is not read again).
    with open(path, "r+") as fh:
        fh.write("address=/other.example/0.0.0.0\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": ["first.example"]}
    assert client.get("/api/v1/dns/domains", headers=AUTH).json()["domains"] == ["first.example"]

    # A new mtime is a change: parsed again.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": ["other.example"]}

    # Replacing the file (a new inode, as an atomic update does) is a change too.
    replacement = path.with_name("domains.new")
    replacement.write_text("address=/third.example/0.0.0.0\n")
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    replacement.replace(path)
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": ["third.example"]}

    # And removing it gives the empty list.
    path.unlink()
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": []}


def test_lists_carry_an_etag(client: TestClient) -> None:
    r = client.get("/dns/domains", headers=AUTH)
    etag = r.headers["etag"]
    again = client.get("/dns/domains", headers={**AUTH, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


# -- upstream ------------------------------------------------------------------------


def test_upstream_joins_nameservers(client: TestClient) -> None:
    r = client.get("/dns/upstream", headers=AUTH)
    assert r.status_code == 200
    # The commented-out nameserver is not one.
    assert r.json() == {"upstream_nameserver": "9.9.9.9\n1.1.1.1"}


@pytest.mark.parametrize("content", [None, "", "search lan\nnameserver\n"])
def test_upstream_absent_or_empty(root: Path, make_client: MakeClient, content: str | None) -> None:
    if content is None:
        (root / RESOLV).unlink()
    else:
        (root / RESOLV).write_text(content)
    r = make_client().get("/dns/upstream", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"upstream_nameserver": ""}


# -- the log ----------------------------------------------------------------------------


def test_logs_parse_single_and_double_digit_days(client: TestClient) -> None:
    r = client.get("/dns/logs", headers=AUTH)
    assert r.status_code == 200
    entries = r.json()
    assert isinstance(entries, list)
    assert len(entries) == 8  # the garbage line is left out
    assert entries[0] == {
        "timestamp": "Aug  7 13:46:30",
        "process": "dnsmasq[812]",
        "message": "started, version 2.89 cachesize 150",
    }
    assert entries[1]["process"] == "dnsmasq-dhcp[812]"
    assert entries[5] == {
        "timestamp": "Aug 17 09:02:11",
        "process": "dnsmasq[812]",
        "message": "query[AAAA] example.com from 10.3.141.102",
    }
    assert all(list(e) == ["timestamp", "process", "message"] for e in entries)


def test_logs_other_line_forms(root: Path, make_client: MakeClient) -> None:
    (root / LOG).write_text(
        "Aug  7 13:46:36 raspberrypi dnsmasq[812]: with a host name\n"
        "2024-08-07T13:46:37.123456+02:00 raspberrypi dnsmasq[812]: rfc3339 time\n"
        "Aug  7 13:46:38 dnsmasq[812]: warning: a colon in the message\n"
        "Aug  7 13:46:39 dnsmasq:\n"
        "Aug  7 13:46:40 dnsmasq[812] no colon after the process\n"
        "Aug 7 13:46:41\n"
        "\r\n"
    )
    r = make_client().get("/dns/logs", headers=AUTH)
    assert r.json() == [
        {"timestamp": "Aug  7 13:46:36", "process": "dnsmasq[812]", "message": "with a host name"},
        {
            "timestamp": "2024-08-07T13:46:37.123456+02:00",
            "process": "dnsmasq[812]",
            "message": "rfc3339 time",
        },
        {
            "timestamp": "Aug  7 13:46:38",
            "process": "dnsmasq[812]",
            "message": "warning: a colon in the message",
        },
        {"timestamp": "Aug  7 13:46:39", "process": "dnsmasq", "message": ""},
    ]


def test_logs_default_to_the_last_500_lines_and_take_a_limit(
    root: Path, make_client: MakeClient
) -> None:
    with open(root / LOG, "w") as fh:
        for i in range(2000):
            fh.write(f"Aug 17 09:{i // 60 % 60:02d}:{i % 60:02d} dnsmasq[812]: line {i}\n")
    client = make_client()
    entries = client.get("/dns/logs", headers=AUTH).json()
    assert [e["message"] for e in entries] == [f"line {i}" for i in range(1500, 2000)]
    some = client.get("/dns/logs?limit=3", headers=AUTH).json()
    assert [e["message"] for e in some] == ["line 1997", "line 1998", "line 1999"]
    many = client.get("/dns/logs?limit=5000", headers=AUTH).json()
    assert len(many) == 2000


@pytest.mark.parametrize("query", ["limit=0", "limit=5001", "limit=ten", "limit=-5"])
def test_logs_limit_is_validated(client: TestClient, query: str) -> None:
    r = client.get(f"/dns/logs?{query}", headers=AUTH)
    assert r.status_code == 422
    assert r.json()["field"] == "limit"


@pytest.mark.parametrize("content", [None, b"", b"\n\n", b"\x00\xff\x80\n" * 100])
def test_logs_absent_empty_or_garbage(
    root: Path, make_client: MakeClient, content: bytes | None
) -> None:
    if content is None:
        (root / LOG).unlink()
    else:
        (root / LOG).write_bytes(content)
    client = make_client()
    r = client.get("/dns/logs", headers=AUTH)
    assert r.status_code == 200
    assert r.json() == []
    assert client.get("/api/v1/dns/logs", headers=AUTH).json()["entries"] == []


def test_huge_log_is_read_from_its_end_only(root: Path, make_client: MakeClient) -> None:
    block = "".join(
        f"Aug  7 13:{i % 60:02d}:{i % 60:02d} dnsmasq[812]: query[A] host{i}.example from "
        f"10.3.141.{i % 200 + 20}\n"
        for i in range(500)
    ).encode()
    with open(root / LOG, "wb") as fh:
        for _ in range(50 * 1024 * 1024 // len(block) + 1):
            fh.write(block)
        fh.write(b"Aug 17 23:59:58 dnsmasq[812]: second to last\n")
        fh.write(b"Aug 17 23:59:59 dnsmasq[812]: the very last\n")
    assert (root / LOG).stat().st_size > 50 * 1024 * 1024
    client = make_client()

    tracemalloc.start()
    try:
        started = time.perf_counter()
        r = client.get("/dns/logs", headers=AUTH)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 200
    entries = r.json()
    assert len(entries) == 500
    assert entries[-1]["message"] == "the very last"
    assert entries[-2]["message"] == "second to last"
    # Reading the whole 50 MB would need at least that much memory, and time.
    assert peak < 8 * 1024 * 1024, peak
    assert elapsed < 5

    big = client.get("/dns/logs?limit=5000", headers=AUTH).json()
    assert len(big) == 5000
    assert big[-1]["message"] == "the very last"


def test_log_with_one_huge_line_is_bounded(root: Path, make_client: MakeClient) -> None:
    with open(root / LOG, "wb") as fh:
        fh.write(b"Aug  7 13:46:36 dnsmasq[812]: before\n")
        fh.write(b"x" * (20 * 1024 * 1024) + b"\n")
        fh.write(b"Aug  7 13:46:37 dnsmasq[812]: after\n")
    r = make_client().get("/dns/logs", headers=AUTH)
    assert r.status_code == 200
    assert [e["message"] for e in r.json()] == ["after"]


# -- /api/v1/dns ---------------------------------------------------------------------------


def test_api_summary(client: TestClient) -> None:
    r = client.get("/api/v1/dns", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["adblock", "upstream_servers", "log"]
    adblock = body["adblock"]
    assert adblock["enabled"] is True
    assert adblock["config_files"] == ["/etc/dnsmasq.d/090_adblock.conf"]
    assert adblock["domains"]["count"] == 5
    assert adblock["domains"]["present"] is True
    assert adblock["domains"]["file"] == "/etc/raspap/adblock/domains.txt"
    assert adblock["domains"]["modified_at"].endswith("Z")
    assert adblock["hostnames"]["count"] == 4
    assert body["upstream_servers"] == ["9.9.9.9", "1.1.1.1"]

    log = body["log"]
    assert len(log) == 8
    first = log[0]
    assert list(first) == ["logged_at", "time_text", "process", "pid", "message"]
    assert (first["time_text"], first["process"], first["pid"]) == (
        "Aug  7 13:46:30",
        "dnsmasq",
        812,
    )
    # Syslog's local time, converted to UTC.
    local = datetime.fromisoformat(first["logged_at"]).astimezone()
    assert first["logged_at"].endswith("Z")
    assert (local.month, local.day, local.hour, local.minute, local.second) == (8, 7, 13, 46, 30)
    assert local.year in (datetime.now().year, datetime.now().year - 1)

    short = client.get("/api/v1/dns?log_limit=2", headers=AUTH).json()["log"]
    assert [e["message"] for e in short] == [e["message"] for e in log[-2:]]
    assert client.get("/api/v1/dns?log_limit=0", headers=AUTH).json()["log"] == []
    assert client.get("/api/v1/dns?log_limit=9999", headers=AUTH).status_code == 422


def test_api_logs(client: TestClient) -> None:
    body = client.get("/api/v1/dns/logs?limit=1", headers=AUTH).json()
    assert body["log_file"] == "/var/log/dnsmasq.log"
    assert [e["message"] for e in body["entries"]] == [
        "reply example.com is 2606:2800:21f:cb07:6820:80da:af6b:8b2c"
    ]


def test_api_summary_adblock_disabled_and_lists_absent(root: Path, make_client: MakeClient) -> None:
    (root / "etc/dnsmasq.d/090_adblock.conf").unlink()
    (root / DOMAINS).unlink()
    (root / RESOLV).unlink()
    (root / LOG).unlink()
    body = make_client().get("/api/v1/dns", headers=AUTH).json()
    assert body["adblock"]["enabled"] is False
    assert body["adblock"]["config_files"] == []
    assert body["adblock"]["domains"] == {
        "file": "/etc/raspap/adblock/domains.txt",
        "present": False,
        "count": 0,
        "truncated": False,
        "modified_at": None,
    }
    assert body["adblock"]["hostnames"]["present"] is True
    assert body["upstream_servers"] == []
    assert body["log"] == []


def test_api_unavailable_without_dnsmasq_but_legacy_routes_answer(
    root: Path, make_client: MakeClient
) -> None:
    (root / "etc/dnsmasq.conf").unlink()
    for conf in (root / "etc/dnsmasq.d").iterdir():
        conf.unlink()
    client = make_client()
    for path in ("/api/v1/dns", "/api/v1/dns/domains", "/api/v1/dns/logs"):
        r = client.get(path, headers=AUTH)
        assert r.status_code == 503, path
        assert "no dnsmasq configuration" in r.json()["detail"]
    for path in ("/dns/domains", "/dns/hostnames", "/dns/upstream", "/dns/logs"):
        assert client.get(path, headers=AUTH).status_code == 200, path


def test_folders_and_fifos_in_place_of_files_never_give_500(
    root: Path, make_client: MakeClient
) -> None:
    (root / DOMAINS).unlink()
    (root / DOMAINS).mkdir()
    (root / LOG).unlink()
    os.mkfifo(root / LOG)  # opening it for reading would block: it must not be opened
    (root / HOSTNAMES).unlink()
    os.symlink("/nonexistent", root / HOSTNAMES)
    client = make_client()
    assert client.get("/dns/domains", headers=AUTH).json() == {"domains": []}
    assert client.get("/dns/hostnames", headers=AUTH).json() == {"hostnames": []}
    assert client.get("/dns/logs", headers=AUTH).json() == []
    assert client.get("/api/v1/dns", headers=AUTH).status_code == 200
