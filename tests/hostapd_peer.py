"""hostapd for tests: a scripted control-socket peer, and the real hostapd.

``ScriptedHostapd`` is a real UNIX datagram socket answered from a thread with
hostapd 2.10's text, for what ``driver=none`` cannot show: stations, their
deauthentication and the deny list. ``real_hostapd`` starts the real program
with ``driver=none`` and its control interface under the fixture root.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_ROOT
from tests.scripted_ctrl import ScriptedPeer

#: A station as hostapd 2.10 (nl80211) describes it after STA-FIRST / STA-NEXT.
STATION_TEMPLATE = """\
{mac}
flags=[AUTH][ASSOC][AUTHORIZED][SHORT_PREAMBLE][WMM][HT]
aid={aid}
capability=0x0431
listen_interval=10
supported_rates=82 84 8b 96 0c 12 18 24 30 48 60 6c
timeout_next=NULLFUNC POLL
dot11RSNAStatsSTAAddress={mac}
dot11RSNAStatsVersion=1
dot11RSNAStatsSelectedPairwiseCipher=00-0f-ac-4
dot11RSNAStatsTKIPLocalMICFailures=0
dot11RSNAStatsTKIPRemoteMICFailures=0
wpa=2
AKMSuiteSelector=00-0f-ac-2
hostapdWPAPTKState=11
hostapdWPAPTKGroupState=0
rx_packets={rx_packets}
tx_packets={tx_packets}
rx_bytes={rx_bytes}
tx_bytes={tx_bytes}
inactive_msec={inactive_msec}
signal={signal}
rx_rate_info={rx_rate} mcs 7 shortGI
tx_rate_info={tx_rate} mcs 7
connected_time={connected_time}
ht_mcs_bitmask=ffff0000000000000000
min_txpower=0
max_txpower=20
ht_caps_info=0x016e
"""


class ScriptedHostapd(ScriptedPeer):
    """A hostapd control socket at ``path`` that answers like hostapd 2.10.

    ``stations`` (MAC to template values) is what STA-FIRST/STA-NEXT walk;
    DEAUTHENTICATE and DENY_ACL ADD_MAC drop the station. Every command is
    kept in ``commands`` and counted by verb in ``counts``. ``events`` makes
    it send that many unsolicited ``<3>...`` messages before each reply;
    ``silent`` makes it never answer.
    """

    thread_name = "scripted-hostapd"

    def __init__(
        self,
        path: Path,
        *,
        interface: str = "wlan0",
        ssid: str = "raspi-webgui",
        channel: int = 1,
        freq: int = 2412,
    ) -> None:
        self.path = path
        self.interface = interface
        self.settings: dict[str, str] = {"ssid": ssid, "channel": str(channel)}
        self.freq = freq
        self.state = "ENABLED"
        self.stations: dict[str, dict[str, int]] = {}
        self.denied: list[str] = []
        self.commands: list[str] = []
        self.counts: Counter[str] = Counter()
        self.events = 0
        self.silent = False
        self.refuse: set[str] = set()
        self._init_peer()

    # -- script ------------------------------------------------------------------

    def add_station(self, mac: str, **values: int) -> None:
        defaults = {
            "aid": len(self.stations) + 1,
            "rx_packets": 93,
            "tx_packets": 70,
            "rx_bytes": 10316,
            "tx_bytes": 13542,
            "inactive_msec": 2140,
            "signal": -48,
            "rx_rate": 720,
            "tx_rate": 650,
            "connected_time": 1063,
        }
        with self._lock:
            self.stations[mac.lower()] = {**defaults, **values}

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            try:
                data, address = self._sock.recvfrom(65536)
            except OSError:
                return
            command = data.decode("utf-8", errors="replace")
            with self._lock:
                self.commands.append(command)
                self.counts[command.split(" ", 1)[0]] += 1
                reply = None if self.silent else self._answer(command)
            if reply is None or not address:
                continue
            with contextlib.suppress(OSError):
                for i in range(self.events):
                    self._sock.sendto(f"<3>AP-STA-POLL-OK 02:00:00:00:00:{i:02x}".encode(), address)
                self._sock.sendto(reply.encode(), address)

    # -- hostapd's answers ---------------------------------------------------------

    def _answer(self, command: str) -> str:
        verb, _, arg = command.partition(" ")
        if verb in self.refuse:
            return "FAIL\n"
        if verb == "PING":
            return "PONG\n"
        if verb == "STATUS":
            return self._status()
        if verb == "STA-FIRST":
            return self._station(next(iter(self.stations), None))
        if verb == "STA-NEXT":
            macs = list(self.stations)
            if arg.lower() not in macs:
                return "FAIL\n"
            index = macs.index(arg.lower()) + 1
            return self._station(macs[index] if index < len(macs) else None)
        if verb == "DEAUTHENTICATE":
            self.stations.pop(arg.split(" ", 1)[0].lower(), None)
            return "OK\n"
        if verb == "DENY_ACL":
            return self._deny(arg)
        if verb == "SET":
            key, _, value = arg.partition(" ")
            if key in self.refuse or (key == "ssid" and not value):
                return "FAIL\n"
            self.settings[key] = value
            return "OK\n"
        if verb in ("RELOAD", "ENABLE", "DISABLE"):
            if (verb == "ENABLE") == (self.state != "DISABLED") and verb != "RELOAD":
                return "FAIL\n"
            if verb == "DISABLE":
                self.state = "DISABLED"
            elif verb == "ENABLE":
                self.state = "ENABLED"
            return "OK\n"
        return "UNKNOWN COMMAND\n"

    def _station(self, mac: str | None) -> str:
        if mac is None:
            return ""
        return STATION_TEMPLATE.format(mac=mac, **self.stations[mac])

    def _deny(self, arg: str) -> str:
        action, _, mac = arg.partition(" ")
        mac = mac.split(" ", 1)[0].lower()
        if action == "ADD_MAC":
            self.denied.append(mac)
            self.stations.pop(mac, None)
        elif action == "DEL_MAC":
            self.denied = [m for m in self.denied if m != mac]
        elif action == "SHOW":
            return "".join(f"{m} VLAN_ID=0\n" for m in self.denied)
        elif action == "CLEAR":
            self.denied.clear()
        else:
            return "FAIL\n"
        return "OK\n"

    def _status(self) -> str:
        ht = "1" if self.freq else "0"
        return (
            f"state={self.state}\nphy=phy0\nfreq={self.freq}\nnum_sta_non_erp=0\n"
            "num_sta_no_short_slot_time=0\nnum_sta_no_short_preamble=0\nolbc=0\n"
            "num_sta_ht_no_gf=0\nnum_sta_no_ht=0\nnum_sta_ht_20_mhz=0\n"
            "num_sta_ht40_intolerant=0\nolbc_ht=0\nht_op_mode=0x0\n"
            "cac_time_seconds=0\ncac_time_left_seconds=N/A\n"
            f"channel={self.settings.get('channel', '1')}\nedmg_enable=0\nedmg_channel=0\n"
            f"secondary_channel=0\nieee80211n={ht}\nieee80211ac=0\nieee80211ax=0\n"
            "beacon_int=100\ndtim_period=2\nht_caps_info=000c\nht_mcs_bitmask=ffff\n"
            "supported_rates=02 04 0b 16 0c 12 18 24 30 48 60 6c\nmax_txpower=20\n"
            f"bss[0]={self.interface}\nbssid[0]=dc:a6:32:ab:cd:ef\n"
            f"ssid[0]={self.settings.get('ssid', '')}\nnum_sta[0]={len(self.stations)}\n"
        )


# -- the fixture machine, in a short path -------------------------------------------


def short_root() -> Iterator[Path]:
    """A private copy of the fixture machine under /tmp with a short path.

    UNIX socket paths hold at most 107 bytes; pytest's tmp_path is often longer.
    """
    base = Path(tempfile.mkdtemp(prefix="ra-", dir="/tmp" if os.path.isdir("/tmp") else None))
    target = base / "root"
    try:
        shutil.copytree(FIXTURE_ROOT, target, symlinks=True)
        yield target
    finally:
        shutil.rmtree(base, ignore_errors=True)


def ctrl_path(root: Path, interface: str = "wlan0") -> Path:
    """Where hostapd.conf's ``ctrl_interface=/var/run/hostapd`` puts the socket."""
    return root / "var" / "run" / "hostapd" / interface


# -- the real hostapd --------------------------------------------------------------


#: Where Debian puts hostapd (not on a normal user's PATH).
_SBIN_HOSTAPD = ("/usr/sbin/hostapd", "/sbin/hostapd")


def hostapd_program() -> str:
    """hostapd's path; skips the test when absent, and fails it in CI (CI=true)."""
    found = shutil.which("hostapd") or next(
        (p for p in _SBIN_HOSTAPD if os.access(p, os.X_OK)), None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hostapd is not installed; CI must install it (apt-get install hostapd)")
        pytest.skip("hostapd is not installed")
    return found


@contextlib.contextmanager
def real_hostapd(root: Path, *, timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """The real hostapd with ``driver=none``, on the fixture's hostapd.conf.

    hostapd reads its own copy (outside the root): the same settings, with
    ``driver=none``, the control interface at its real path under the root,
    and no country_code (without a driver no regulatory update ever comes, so
    the interface would wait in COUNTRY_UPDATE). Stopped (SIGTERM, then
    SIGKILL) whatever happens.
    """
    program = hostapd_program()
    ctrl = ctrl_path(root).parent
    ctrl.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (root / "etc/hostapd/hostapd.conf").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key == "driver":
            line = "driver=none"
        elif key == "ctrl_interface":
            line = f"ctrl_interface={ctrl}"
        elif key == "country_code":
            continue
        lines.append(line)
    conf = root.parent / "hostapd-run.conf"
    conf.write_text("\n".join(lines) + "\n")
    log_path = root.parent / "hostapd.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [program, str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not ctrl_path(root).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"hostapd did not open its control socket:\n{log_path.read_text()[-2000:]}"
                )
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
