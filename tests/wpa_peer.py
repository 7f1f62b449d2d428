"""wpa_supplicant for tests: a scripted control-socket peer, and the real program.

``ScriptedWpa`` is a real UNIX datagram socket answered from a thread with
wpa_supplicant 2.10's text, for what the wired driver cannot show: scan
results, SIGNAL_POLL, and connections that succeed or fail on a wrong key.
It keeps networks as wpa_supplicant does (ADD/SET/SELECT/ENABLE/REMOVE),
sends events to ATTACHed clients, and refuses what wpa_supplicant refuses.
``real_wpa_supplicant`` runs the real program with ``-D wired`` on one end of
a veth pair, in a network namespace it creates and removes.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.scripted_ctrl import ScriptedPeer

#: SCAN_RESULTS as wpa_supplicant 2.10 prints them: mixed security, a hidden
#: network (empty SSID), UTF-8 and a quote in SSIDs (printf-escaped, \xNN).
SCAN_RESULTS = (
    "bssid / frequency / signal level / flags / ssid\n"
    "aa:bb:cc:00:00:01\t2412\t-71\t[WPA2-PSK-CCMP][ESS]\tHome\n"
    'aa:bb:cc:00:00:02\t5180\t-48\t[RSN-SAE-CCMP][ESS]\tCaf\\xc3\\xa9 \\"Sol\\"\n'
    "aa:bb:cc:00:00:03\t2437\t-80\t[ESS]\tFreeWifi\n"
    "aa:bb:cc:00:00:04\t5500\t-60\t[WPA2-EAP-CCMP][ESS]\tCorp\n"
    "aa:bb:cc:00:00:05\t2462\t-55\t[WPA2-PSK-CCMP][ESS]\t\n"
    "aa:bb:cc:00:00:06\t5745\t-66\t[WPA2-PSK+SAE-CCMP][ESS]\t\\xe6\\x97\\x85\\xe9\\xa4\\xa8\n"
    "aa:bb:cc:00:00:07\t2412\t-90\t[WEP][ESS]\t\\x00\\x00\\x00\n"
)


@dataclass
class Net:
    id: int
    ssid: bytes = b""
    psk: str | None = None
    key_mgmt: str = "WPA-PSK WPA-EAP"
    priority: int = 0
    disabled: bool = False
    scan_ssid: bool = False


@dataclass
class Ap:
    """An access point the scripted radio can reach."""

    ssid: bytes
    bssid: str
    psk: str | None  # as SET_NETWORK gets it: '"passphrase"' or 64 hex digits; None: open
    freq: int = 2412
    signal: int = -52


def escape(raw: bytes) -> str:
    """wpa_supplicant's printf_encode of an SSID."""
    out = []
    for b in raw:
        if b == 0x22:
            out.append('\\"')
        elif b == 0x5C:
            out.append("\\\\")
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


@dataclass
class ScriptedWpa(ScriptedPeer):
    """A wpa_supplicant control socket at ``path`` for one interface."""

    thread_name = "scripted-wpa"

    path: Path
    interface: str = "wlan1"
    networks: list[Net] = field(default_factory=list)
    aps: list[Ap] = field(default_factory=list)
    scan_results: str = SCAN_RESULTS
    connect_delay: float = 0.05
    commands: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    current: int | None = None
    state: str = "DISCONNECTED"
    silent_scan: bool = False
    #: SET_NETWORK settings answered with FAIL.
    refuse_set: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._next_id = 0
        self._attached: set[str] = set()
        self._due: list[tuple[float, str]] = []
        self._init_peer()

    # -- script ------------------------------------------------------------------

    def add(self, ssid: str, psk: str | None = None, **fields: object) -> Net:
        net = Net(self._next_id, ssid.encode(), psk, "NONE" if psk is None else "WPA-PSK")
        for key, value in fields.items():
            setattr(net, key, value)
        self._next_id += 1
        self.networks.append(net)
        return net

    def join_now(self, net_id: int) -> None:
        """Be connected to ``net_id`` already (as after boot)."""
        net = self._net(net_id)
        assert net is not None
        ap = self._ap(net)
        assert ap is not None
        self.current, self.state = net_id, "COMPLETED"
        self._bssid = ap.bssid

    def _serve(self) -> None:
        assert self._sock is not None
        deadline = time.monotonic() + 120  # bounded, whatever a test does
        while not self._stop.is_set() and time.monotonic() < deadline:
            self._send_due()
            ready, _, _ = select.select([self._sock], [], [], 0.01)
            if not ready:
                continue
            try:
                data, address = self._sock.recvfrom(65536)
            except OSError:
                return
            command = data.decode("utf-8", errors="surrogateescape")
            with self._lock:
                self.commands.append(command)
                self.counts[command.split(" ", 1)[0]] += 1
                if command == "ATTACH":
                    self._attached.add(address)
                    reply = "OK\n"
                elif command == "DETACH":
                    self._attached.discard(address)
                    reply = "OK\n"
                else:
                    reply = self._answer(command)
            if address:
                with contextlib.suppress(OSError):
                    self._sock.sendto(reply.encode(), address)

    def _later(self, delay: float, text: str) -> None:
        self._due.append((time.monotonic() + delay, text))

    def _send_due(self) -> None:
        assert self._sock is not None
        now = time.monotonic()
        with self._lock:
            due = [t for at, t in self._due if at <= now]
            self._due = [(at, t) for at, t in self._due if at > now]
            targets = list(self._attached)
        for text in due:
            if text.startswith("!"):  # a state change, not a message
                self._apply(text[1:])
                continue
            for address in targets:
                with contextlib.suppress(OSError):
                    self._sock.sendto(f"<3>{text}".encode(), address)

    def _apply(self, change: str) -> None:
        verb, _, arg = change.partition(" ")
        with self._lock:
            if verb == "connected":
                net_id, bssid = arg.split(" ")
                self.current, self.state, self._bssid = int(net_id), "COMPLETED", bssid

    # -- wpa_supplicant's answers -------------------------------------------------

    def _net(self, net_id: int) -> Net | None:
        return next((n for n in self.networks if n.id == net_id), None)

    def _ap(self, net: Net) -> Ap | None:
        return next((a for a in self.aps if a.ssid == net.ssid), None)

    def _answer(self, command: str) -> str:
        verb, _, arg = command.partition(" ")
        if "\n" in command or "\x00" in command:
            return "UNKNOWN COMMAND\n"
        if verb == "PING":
            return "PONG\n"
        if verb == "STATUS":
            return self._status()
        if verb == "SIGNAL_POLL":
            if self.state != "COMPLETED":
                return "FAIL\n"
            net = self._net(self.current or 0)
            ap = self._ap(net) if net else None
            freq = ap.freq if ap else 2412
            signal = ap.signal if ap else -52
            return f"RSSI={signal}\nLINKSPEED=300\nNOISE=9999\nFREQUENCY={freq}\nAVG_RSSI=-53\n"
        if verb == "LIST_NETWORKS":
            lines = ["network id / ssid / bssid / flags"]
            for n in self.networks:
                flags = ""
                if n.id == self.current and self.state == "COMPLETED":
                    flags = "[CURRENT]"
                elif n.disabled:
                    flags = "[DISABLED]"
                lines.append(f"{n.id}\t{escape(n.ssid)}\tany\t{flags}")
            return "\n".join(lines) + "\n"
        if verb == "GET_NETWORK":
            net_id, _, name = arg.partition(" ")
            net = self._net(int(net_id)) if net_id.isdigit() else None
            if net is None or name != "priority":
                return "FAIL\n"
            return str(net.priority)
        if verb == "ADD_NETWORK":
            net = Net(self._next_id, disabled=True)
            self._next_id += 1
            self.networks.append(net)
            return f"{net.id}\n"
        if verb == "SET_NETWORK":
            return self._set(arg)
        if verb in ("REMOVE_NETWORK", "ENABLE_NETWORK", "DISABLE_NETWORK"):
            net = self._net(int(arg)) if arg.isdigit() else None
            if net is None:
                return "FAIL\n"
            if verb == "REMOVE_NETWORK":
                self.networks.remove(net)
                if self.current == net.id:
                    self.current, self.state = None, "DISCONNECTED"
            else:
                net.disabled = verb == "DISABLE_NETWORK"
            return "OK\n"
        if verb == "SELECT_NETWORK":
            return self._select(arg)
        if verb == "SAVE_CONFIG":
            return "OK\n"
        if verb == "DISCONNECT":
            self.state = "DISCONNECTED"
            return "OK\n"
        if verb == "RECONNECT":
            if self.current is not None:
                self.state = "COMPLETED"
            return "OK\n"
        if verb == "SCAN":
            if not self.silent_scan:
                self._later(0.05, "CTRL-EVENT-SCAN-STARTED ")
                self._later(0.1, "CTRL-EVENT-SCAN-RESULTS ")
            return "OK\n"
        if verb == "SCAN_RESULTS":
            return self.scan_results
        return "UNKNOWN COMMAND\n"

    def _set(self, arg: str) -> str:
        parts = arg.split(" ", 2)
        if len(parts) != 3 or not parts[0].isdigit():
            return "FAIL\n"
        net = self._net(int(parts[0]))
        name, value = parts[1], parts[2]
        if net is None:
            return "FAIL\n"
        if name in self.refuse_set:
            return "FAIL\n"
        if name == "ssid":
            if value.startswith('"'):
                net.ssid = value[1:-1].encode()
            else:
                try:
                    net.ssid = bytes.fromhex(value)
                except ValueError:
                    return "FAIL\n"
        elif name == "psk":
            net.psk = value
        elif name == "key_mgmt":
            net.key_mgmt = value
        elif name == "priority":
            net.priority = int(value)
        elif name == "scan_ssid":
            net.scan_ssid = value == "1"
        elif name != "ieee80211w":
            return "FAIL\n"
        return "OK\n"

    def _select(self, arg: str) -> str:
        net = self._net(int(arg)) if arg.isdigit() else None
        if net is None:
            return "FAIL\n"
        for other in self.networks:
            other.disabled = other.id != net.id
        if self.state == "COMPLETED" and self.current is not None:
            self._later(
                0.01, f"CTRL-EVENT-DISCONNECTED bssid={self._bssid} reason=3 locally_generated=1"
            )
        self.current, self.state = None, "SCANNING"
        ap = self._ap(net)
        if ap is None:
            for i in range(3):
                self._later(self.connect_delay * (i + 1), "CTRL-EVENT-NETWORK-NOT-FOUND")
            return "OK\n"
        open_ap = ap.psk is None
        if (open_ap and "NONE" in net.key_mgmt) or (not open_ap and net.psk == ap.psk):
            self._later(self.connect_delay, f"!connected {net.id} {ap.bssid}")
            self._later(
                self.connect_delay,
                f"CTRL-EVENT-CONNECTED - Connection to {ap.bssid} completed [id={net.id} id_str=]",
            )
        else:
            self._later(
                self.connect_delay,
                f'CTRL-EVENT-SSID-TEMP-DISABLED id={net.id} ssid="{escape(net.ssid)}" '
                "auth_failures=1 duration=10 reason=WRONG_KEY",
            )
        return "OK\n"

    def _status(self) -> str:
        address = "dc:a6:32:00:00:01"
        if self.state != "COMPLETED" or self.current is None:
            return f"wpa_state={self.state}\naddress={address}\nuuid={uuid.UUID(int=1)}\n"
        net = self._net(self.current)
        assert net is not None
        ap = self._ap(net)
        freq = ap.freq if ap else 2412
        return (
            f"bssid={self._bssid}\nfreq={freq}\nssid={escape(net.ssid)}\nid={net.id}\n"
            "mode=station\nwifi_generation=4\npairwise_cipher=CCMP\ngroup_cipher=CCMP\n"
            f"key_mgmt={'NONE' if net.psk is None else 'WPA2-PSK'}\nwpa_state=COMPLETED\n"
            f"ip_address=192.168.8.23\naddress={address}\nuuid={uuid.UUID(int=1)}\n"
        )


# -- the real wpa_supplicant ---------------------------------------------------------


def wpa_program() -> str:
    """wpa_supplicant's path; skips the test when absent, and fails it in CI (CI=true)."""
    found = shutil.which("wpa_supplicant") or next(
        (p for p in ("/usr/sbin/wpa_supplicant", "/sbin/wpa_supplicant") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wpa_supplicant is not installed; CI must install it (wpasupplicant)")
        pytest.skip("wpa_supplicant is not installed")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the real wpa_supplicant test needs root and iproute2 in CI")
        pytest.skip("network namespaces need root and iproute2")
    return found


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True)


@contextlib.contextmanager
def real_wpa_supplicant(
    ctrl_dir: Path, conf: Path, *, interface: str = "v0", timeout: float = 10.0
) -> Iterator[subprocess.Popen[bytes]]:
    """The real wpa_supplicant, ``-D wired`` on ``interface`` (one end of a veth
    pair) in a network namespace of its own, its control socket in ``ctrl_dir``.
    The namespace and the program are gone afterwards, whatever happens."""
    program = wpa_program()
    namespace = f"raspapi-wifi-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _ip("netns", "add", namespace)
    proc: subprocess.Popen[bytes] | None = None
    log_path = conf.with_suffix(".log")
    try:
        _ip("-n", namespace, "link", "add", interface, "type", "veth", "peer", "name", "peer0")
        _ip("-n", namespace, "link", "set", interface, "up")
        _ip("-n", namespace, "link", "set", "peer0", "up")
        ctrl_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    namespace,
                    program,
                    "-D",
                    "wired",
                    "-i",
                    interface,
                    "-C",
                    str(ctrl_dir),
                    "-c",
                    str(conf),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not (ctrl_dir / interface).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"wpa_supplicant did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.02)
        yield proc
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _ip("netns", "del", namespace)
