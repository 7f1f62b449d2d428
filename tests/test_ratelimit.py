"""Rate limits per key and address, per route group; failed authentication throttled."""

from __future__ import annotations

import threading
import time

import pytest
from starlette.testclient import TestClient

from raspapi.http.errors import StartupError
from raspapi.http.ratelimit import (
    DEFAULT_RATE_LIMITS,
    RateLimit,
    RateLimiter,
    client_address,
    parse_rate_limits,
)
from raspapi.settings import Settings
from tests.conftest import AUTH, MakeClient

WRONG = {"access_token": "0123456789abcdefghijklmnopqrstuw"}


def limits(text: str) -> tuple[RateLimit, ...]:
    return parse_rate_limits(text)


def other_client(client: TestClient, host: str) -> TestClient:
    """A second client of the same (started) app, from another address."""
    return TestClient(client.app, raise_server_exceptions=False, client=(host, 40000))


def scoped_key(client: TestClient, name: str, scopes: list[str]) -> dict[str, str]:
    response = client.post("/api/v1/keys", headers=AUTH, json={"name": name, "scopes": scopes})
    assert response.status_code == 201, response.text
    return {"access_token": response.json()["key"]}


def assert_limited(response, group: str) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == "rate_limited"
    assert group in body["detail"] or "authentication" in body["detail"]
    wait = int(response.headers["retry-after"])
    assert 1 <= wait <= 60
    return wait


def test_a_burst_on_one_key_gets_429_with_retry_after(make_client: MakeClient):
    client = make_client(rate_limits=limits("read=5/minute"))
    codes = [client.get("/api/v1/thermal", headers=AUTH).status_code for _ in range(5)]
    assert codes == [200] * 5
    assert_limited(client.get("/api/v1/thermal", headers=AUTH), "read")
    # The group, not the route: every read route shares the budget.
    assert_limited(client.get("/system", headers=AUTH), "read")


def test_keys_and_addresses_are_counted_apart(make_client: MakeClient):
    client = make_client(rate_limits=limits("read=3/minute"))
    dashboard = scoped_key(client, "dashboard", ["read"])
    for _ in range(3):
        assert client.get("/", headers=AUTH).status_code == 200
    assert client.get("/", headers=AUTH).status_code == 429
    # Another key from the same address, and the same key from another address.
    assert client.get("/", headers=dashboard).status_code == 200
    assert other_client(client, "192.168.50.12").get("/", headers=AUTH).status_code == 200


def test_groups_have_their_own_limits(make_client: MakeClient):
    client = make_client(rate_limits=limits("read=2/minute;admin=off"))
    for _ in range(2):
        client.get("/", headers=AUTH)
    assert client.get("/", headers=AUTH).status_code == 429
    # admin routes are another group (and unlimited here)
    for _ in range(5):
        assert client.get("/api/v1/keys", headers=AUTH).status_code == 200


def test_routes_without_a_key_are_limited_per_address(make_client: MakeClient):
    client = make_client(rate_limits=limits("open=4/minute"))
    for _ in range(4):
        assert client.get("/health").status_code == 200
    assert_limited(client.get("/health"), "open")
    assert other_client(client, "10.3.141.7").get("/health").status_code == 200


def test_failed_authentication_blocks_the_address_even_with_the_right_key(
    make_client: MakeClient,
):
    client = make_client(rate_limits=limits("auth=3/minute"))
    for _ in range(2):
        assert client.get("/api/v1/thermal", headers=WRONG).status_code == 401
    assert client.get("/system").status_code == 403  # no key at all is a failure too
    assert_limited(client.get("/api/v1/thermal", headers=AUTH), "auth")
    assert_limited(client.get("/system", headers=AUTH), "auth")
    # Routes without a key still answer; other addresses are not affected.
    assert client.get("/health").status_code == 200
    assert other_client(client, "10.3.141.9").get("/system", headers=AUTH).status_code == 200


def test_auth_throttle_lifts_when_the_window_passes(make_client: MakeClient):
    client = make_client(rate_limits=limits("auth=2/2s"))
    for _ in range(2):
        client.get("/api/v1/thermal", headers=WRONG)
    response = client.get("/api/v1/thermal", headers=AUTH)
    wait = assert_limited(response, "auth")
    assert wait <= 2
    deadline = time.monotonic() + 5
    while client.get("/api/v1/thermal", headers=AUTH).status_code == 429:
        assert time.monotonic() < deadline, "still refused after the window"
        time.sleep(0.2)


def test_a_runaway_poller_is_refused_while_others_are_served(make_client: MakeClient):
    client = make_client(rate_limits=limits("read=50/minute"))
    runaway = [client.get("/system", headers=AUTH).status_code for _ in range(200)]
    assert runaway.count(200) == 50 and runaway.count(429) == 150
    assert other_client(client, "10.3.141.20").get("/system", headers=AUTH).status_code == 200
    assert client.get("/health").status_code == 200


def test_defaults_never_limit_a_dashboard(client: TestClient):
    """A dashboard refreshing five widgets every second for a minute: 300 reads."""
    paths = ["/system", "/api/v1/thermal", "/api/v1/system", "/", "/ready"]
    for _ in range(60):
        for path in paths:
            assert client.get(path, headers=AUTH).status_code != 429


def test_every_limit_off(make_client: MakeClient):
    client = make_client(rate_limits=limits("off"))
    assert client.app.state.runtime.limiter is None  # type: ignore[attr-defined]
    for _ in range(30):
        assert client.get("/api/v1/thermal", headers=WRONG).status_code == 401
    assert client.get("/api/v1/thermal", headers=AUTH).status_code == 200


# -- the setting ---------------------------------------------------------------------


def test_defaults():
    assert {str(limit) for limit in DEFAULT_RATE_LIMITS} >= {"1200/minute", "10/minute"}
    assert parse_rate_limits("") == DEFAULT_RATE_LIMITS
    read = {lim.group: lim for lim in DEFAULT_RATE_LIMITS}["read"]
    assert read.requests / read.seconds >= 10, "ten times a 1/s poll of one route"


@pytest.mark.parametrize(
    ("text", "group", "count", "seconds"),
    [
        ("read=600/minute", "read", 600, 60),
        ("read = 20/second", "read", 20, 1),
        ("control=100/10s", "control", 100, 10),
        ("ingest=5000/hour", "ingest", 5000, 3600),
        ("auth=50/day", "auth", 50, 86400),
        ("open=30/5 minutes", "open", 30, 300),
        ("READ=1/Min", "read", 1, 60),
    ],
)
def test_syntax(text: str, group: str, count: int, seconds: int):
    parsed = {lim.group: lim for lim in parse_rate_limits(text)}
    assert parsed[group] == RateLimit(group, count, seconds)
    others = {lim.group: lim for lim in DEFAULT_RATE_LIMITS if lim.group != group}
    assert {g: lim for g, lim in parsed.items() if g != group} == others


def test_a_group_can_be_turned_off_and_several_changed():
    parsed = {lim.group: lim for lim in parse_rate_limits("control=off; read=10/minute, auth=5/m")}
    assert "control" not in parsed
    assert parsed["read"].requests == 10 and parsed["auth"].requests == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("reed=10/minute", "unknown group 'reed'"),
        ("read", "is not GROUP=LIMIT"),
        ("read=ten/minute", "is not COUNT/UNIT"),
        ("read=10/fortnight", "is not COUNT/UNIT"),
        ("read=0/minute", "at least 1"),
        ("read=10/2d", "from 1 second to 1 day"),
        ("read=1/minute;read=2/minute", "given twice"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, value: str, message: str):
    with pytest.raises(StartupError) as err:
        Settings.from_env({"RASPAPI_RATE_LIMITS": value, "RASPAPI_ENV_FILE": str(tmp_path / "e")})
    assert "RASPAPI_RATE_LIMITS" in str(err.value)
    assert message in str(err.value)


def test_from_the_environment(tmp_path):
    settings = Settings.from_env(
        {"RASPAPI_RATE_LIMITS": "read=7/minute", "RASPAPI_ENV_FILE": str(tmp_path / "e")}
    )
    assert RateLimit("read", 7, 60) in settings.rate_limits


# -- addresses and memory ----------------------------------------------------------------


def test_ipv6_callers_are_counted_by_their_64_prefix():
    assert client_address("2001:db8:1:2:aaaa::1") == client_address("2001:db8:1:2:bbbb::9")
    assert client_address("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_address("2001:db8:1:3::1") != client_address("2001:db8:1:2::1")
    assert client_address("::ffff:192.168.50.10") == "192.168.50.10"
    assert client_address("192.168.50.10") == "192.168.50.10"


def test_counters_are_bounded_whatever_the_number_of_addresses():
    limiter = RateLimiter(limits("open=2/minute"), max_counters=100)
    refused = 0
    for n in range(5000):
        scope = {"client": (f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", 1000)}
        if limiter.check("open", scope, None) is not None:
            refused += 1
    assert len(limiter.windows) <= 101
    # Past the bound, new addresses share one counter: a flood is still limited.
    assert refused > 4000


def test_expired_counters_are_swept_without_a_thread():
    threads = threading.active_count()
    limiter = RateLimiter(limits("open=5/1s"))
    for n in range(50):
        limiter.check("open", {"client": (f"10.0.0.{n}", 1000)}, None)
    assert len(limiter.windows) == 50
    assert threading.active_count() == threads
    time.sleep(1.1)
    limiter.sweep()
    assert not limiter.windows
