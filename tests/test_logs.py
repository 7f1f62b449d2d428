"""Log records are one line each, even with a traceback, and never hold a key."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raspapi.daemon.logs import OneLineFormatter, stderr_is_journal

PROJECT = Path(__file__).parents[1]


def test_traceback_is_folded_into_the_line():
    formatter = OneLineFormatter(journald=True)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord(
            "raspapi",
            logging.ERROR,
            __file__,
            1,
            "it broke\nhere",
            None,
            exc_info=__import__("sys").exc_info(),
        )
    line = formatter.format(record)
    assert "\n" not in line
    assert line.startswith("<3>ERROR raspapi: it broke | here [ValueError at test_logs.py:")


def test_journald_lines_have_no_timestamp_but_a_terminal_does():
    record = logging.LogRecord("raspapi", logging.INFO, __file__, 1, "hello", None, None)
    assert OneLineFormatter(journald=True).format(record) == "<6>INFO raspapi: hello"
    plain = OneLineFormatter(journald=False).format(record)
    assert plain.endswith(" INFO raspapi: hello") and "<" not in plain


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
    ],
)
def test_journald_lines_carry_their_syslog_priority(level: int, priority: int):
    record = logging.LogRecord("raspapi.access", level, __file__, 1, "x", None, None)
    name = logging.getLevelName(level)
    assert OneLineFormatter(journald=True).format(record) == f"<{priority}>{name} raspapi.access: x"


def test_the_journal_is_recognised_by_the_stream_itself(tmp_path: Path):
    with open(tmp_path / "stream", "wb") as stream, open(tmp_path / "other", "wb") as other:
        st = os.fstat(stream.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stderr_is_journal(env, stream.fileno())
        # Inherited by a program whose stderr is elsewhere (a terminal, a pipe): plain.
        assert not stderr_is_journal(env, other.fileno())
        assert not stderr_is_journal({}, stream.fileno())
        for bad in ("", "12", "a:b", ":", f"{st.st_dev}:{st.st_ino}x"):
            assert not stderr_is_journal({"JOURNAL_STREAM": bad}, stream.fileno())


def test_the_daemon_prefixes_only_when_stderr_is_the_journal(tmp_path: Path):
    """``raspapi`` configures logging from the real stderr: a file named in
    JOURNAL_STREAM gets priorities, the same file without it plain lines."""
    code = (
        "import logging, os, sys\n"
        "from raspapi.daemon import logs\n"
        "if len(sys.argv) > 1:\n"
        "    st = os.fstat(2)\n"
        "    os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'\n"
        "logs.configure('info')\n"
        "logging.getLogger('raspapi').warning('disk full')\n"
        "logging.getLogger('raspapi').info('fine')\n"
    )
    outputs = []
    for args in ([], ["journal"]):
        path = tmp_path / f"stderr{len(args)}"
        with open(path, "wb") as stderr:
            subprocess.run([sys.executable, "-c", code, *args], stderr=stderr, check=True)
        outputs.append(path.read_text().splitlines())
    plain, journal = outputs
    assert journal == ["<4>WARNING raspapi: disk full", "<6>INFO raspapi: fine"]
    assert plain[0].endswith(" WARNING raspapi: disk full") and not plain[0].startswith("<")


def test_no_shell_true_anywhere():
    result = subprocess.run(
        ["grep", "-rnE", r"shell\s*=\s*True", "--include=*.py", "raspapi", "plugins", "bench"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout == ""
