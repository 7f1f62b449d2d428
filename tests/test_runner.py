"""The command runner: argument lists only, timeouts, capped output, clear errors."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from raspapi.host.runner import (
    CommandFailed,
    CommandNotFound,
    CommandRunner,
    CommandTimeout,
    OutputTooLarge,
)
from tests.conftest import run_on


def run(coro):
    return asyncio.run(coro)


def test_runs_and_captures_output():
    result = run(CommandRunner().run(["printf", "%s|", "a b", "; rm -rf /"]))
    # No shell: every argument arrives as it was given.
    assert result.text == "a b|; rm -rf /|"
    assert result.returncode == 0


def test_missing_program_is_a_clear_error():
    with pytest.raises(CommandNotFound, match="no-such-program-here: not installed"):
        run(CommandRunner().run(["no-such-program-here"]))


def test_non_zero_exit_raises_with_stderr():
    with pytest.raises(CommandFailed) as info:
        run(CommandRunner().run(["sh", "-c", "echo oops >&2; exit 3"]))
    assert info.value.returncode == 3
    assert "exited with status 3: oops" in str(info.value)
    result = run(CommandRunner().run(["sh", "-c", "exit 3"], check=False))
    assert result.returncode == 3


def test_timeout_kills_the_process_group():
    start = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"timed out after 0\.3 s"):
        run(CommandRunner().run(["sh", "-c", "sleep 30 & sleep 30"], timeout=0.3))
    assert time.monotonic() - start < 5


def test_output_is_capped():
    with pytest.raises(OutputTooLarge, match="printed more than 1000 bytes"):
        run(CommandRunner().run(["head", "-c", "100000", "/dev/zero"], max_output=1000))


def test_input_goes_to_stdin():
    assert run(CommandRunner().run(["cat"], input=b"secret\n")).text == "secret\n"


def test_children_never_see_the_api_key():
    runner = CommandRunner(environ={"PATH": "/usr/bin:/bin", "RASPAP_API_KEY": "x" * 32})
    assert "RASPAP_API_KEY" not in run(runner.run(["env"])).text


def test_programs_under_the_root_come_first(tmp_path: Path):
    fake = tmp_path / "usr" / "bin" / "vcgencmd"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho throttled=0x50005\n")
    fake.chmod(0o755)
    runner = CommandRunner(tmp_path)
    assert runner.which("vcgencmd") == str(fake)
    assert run(runner.run(["vcgencmd", "get_throttled"])).text == "throttled=0x50005\n"


def test_a_string_is_not_a_command():
    with pytest.raises(TypeError):
        run(CommandRunner().run("ls -l"))


def test_failure_message_is_the_first_line_of_stderr():
    script = (
        "echo 'Job for hostapd.service failed.' >&2; echo \"See 'systemctl status'\" >&2; exit 1"
    )
    with pytest.raises(CommandFailed, match=r"status 1: Job for hostapd\.service failed\.$"):
        run(CommandRunner().run(["sh", "-c", script]))


def test_input_reaches_a_program_that_opens_dev_stdin(loop_name: str):
    # `wg set ... preshared-key /dev/stdin` opens its stdin by path; uvloop
    # hands children a socket pair there, which cannot be opened as a file.
    out = run_on(loop_name, CommandRunner().run(["cat", "/dev/stdin"], input=b"psk\n"))
    assert out.text == "psk\n"


def test_a_program_that_ignores_its_input_is_judged_by_its_exit_status(loop_name: str):
    # 1 MB into a program that never reads it: a broken pipe, not a crash.
    result = run_on(loop_name, CommandRunner().run(["true"], input=b"x" * 1_000_000))
    assert result.returncode == 0
    with pytest.raises(CommandFailed, match="status 3"):
        run_on(loop_name, CommandRunner().run(["sh", "-c", "exit 3"], input=b"x" * 1_000_000))


def test_large_input_arrives_whole(loop_name: str):
    data = bytes(range(256)) * 4096  # 1 MiB, far past a pipe's buffer
    out = run_on(loop_name, CommandRunner().run(["cat"], input=data, max_output=2 << 20))
    assert out.stdout == data
