"""systemctl through the runner, against the fixture machine's systemctl."""

from __future__ import annotations

from pathlib import Path

from raspapi.host.runner import CommandRunner
from raspapi.host.systemd import Systemd
from tests.conftest import run_on


def test_states_of_several_units_in_one_call(root: Path, loop_name: str):
    (root / "fake" / "systemd" / "units").mkdir(parents=True, exist_ok=True)
    (root / "fake" / "systemd" / "units" / "hostapd.service").write_text("active\n")
    (root / "fake" / "systemd" / "units" / "dnsmasq.service").write_text("failed\n")
    log = root / "fake" / "systemctl.log"
    log.unlink(missing_ok=True)
    systemd = Systemd(CommandRunner(root))
    hostapd, dnsmasq, absent = run_on(
        loop_name, systemd.states(["hostapd.service", "dnsmasq.service", "nothing.service"])
    )
    assert len(log.read_text().splitlines()) == 1
    assert hostapd.active and hostapd.main_pid == 812 and hostapd.memory_bytes == 5390336
    assert hostapd.active_since == "Sun 2024-03-10 11:11:11 CET"
    assert dnsmasq.active_state == "failed" and dnsmasq.memory_bytes is None
    assert absent.load_state == "not-found" and not absent.active


def test_act_passes_no_block_when_asked(root: Path, loop_name: str):
    (root / "fake" / "systemd" / "units").mkdir(parents=True, exist_ok=True)
    (root / "fake" / "systemd" / "units" / "restapi.service").write_text("active\n")
    log = root / "fake" / "systemctl.log"
    log.unlink(missing_ok=True)
    run_on(loop_name, Systemd(CommandRunner(root)).act("restart", "restapi.service", no_block=True))
    assert log.read_text() == "restart --no-ask-password --no-block -- restapi.service\n"
