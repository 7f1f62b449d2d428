"""Log records are one line each, even with a traceback, and never hold a key."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from raspapi.daemon.logs import OneLineFormatter

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
    assert line.startswith("ERROR raspapi: it broke | here [ValueError at test_logs.py:")


def test_journald_lines_have_no_timestamp_but_a_terminal_does():
    record = logging.LogRecord("raspapi", logging.INFO, __file__, 1, "hello", None, None)
    assert OneLineFormatter(journald=True).format(record) == "INFO raspapi: hello"
    assert OneLineFormatter(journald=False).format(record).endswith(" INFO raspapi: hello")


def test_no_shell_true_anywhere():
    result = subprocess.run(
        ["grep", "-rnE", r"shell\s*=\s*True", "--include=*.py", "raspapi", "plugins", "bench"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout == ""
