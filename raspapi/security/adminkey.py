"""The admin key: RaspAP's ``RASPAP_API_KEY``, generated, stored and re-read."""

from __future__ import annotations

import os
import re
import secrets
import string
from pathlib import Path

from dotenv import dotenv_values

from raspapi.host.files import atomic_write

KEY_NAME = "RASPAP_API_KEY"
KEY_ALPHABET = string.digits + string.ascii_lowercase
KEY_LENGTH = 32


def generate_key(length: int = KEY_LENGTH) -> str:
    """A key as RaspAP's GUI makes them (``[0-9a-z]``), but from a CSPRNG."""
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(length))


def set_env_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in a dotenv file, keeping every other line; mode 0600."""
    if not re.fullmatch(r"[^\s'\"\\#]+", value):
        raise ValueError(f"{name} must be a non-empty value without spaces, quotes or #")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(name)}\s*=")
    out: list[str] = []
    done = False
    for line in lines:
        if pattern.match(line):
            if not done:
                out.append(f"{name}={value}")
                done = True
            continue
        out.append(line)
    if not done:
        out.append(f"{name}={value}")
    atomic_write(path, ("\n".join(out) + "\n").encode(), mode=0o600)


class AdminKey:
    """The current admin key, re-read whenever its file changes.

    A key set in the process environment wins over the file, as in RaspAP.
    """

    def __init__(self, env_file: Path, override: str | None = None) -> None:
        self.env_file = env_file
        self.override = override
        self._stamp: tuple[int, int, int] | None = None
        self._value: str | None = None

    def current(self) -> str | None:
        if self.override:
            return self.override
        try:
            st = os.stat(self.env_file)
        except OSError:
            self._stamp, self._value = None, None
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._value = self._read()
            self._stamp = stamp
        return self._value

    def _read(self) -> str | None:
        try:
            value = dotenv_values(self.env_file).get(KEY_NAME)
        except (OSError, UnicodeDecodeError):
            return None
        return value.strip() or None if value else None

    def ensure(self) -> bool:
        """Make sure a key exists; generate and save one if not.

        Returns True when a new key was written.
        """
        if self.current():
            return False
        set_env_value(self.env_file, KEY_NAME, generate_key())
        return True
