"""The admin key: RaspAP's ``RASPAP_API_KEY``, generated, stored and re-read."""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import string
from pathlib import Path

from dotenv import dotenv_values

from raspapi.host.files import atomic_write

KEY_NAME = "RASPAP_API_KEY"
KEY_ALPHABET = string.digits + string.ascii_lowercase
KEY_LENGTH = 32
#: The group RaspAP's GUI runs as; its RestAPI page reads the key file as it.
GUI_GROUP = "www-data"


def gui_group(env_file: Path) -> int | None:
    """The gid of RaspAP's GUI when it is installed, else None.

    Installed means: the ``www-data`` group exists and the folder above the key
    file's (``/etc/raspap`` for ``/etc/raspap/api/.env``) belongs to it, as
    RaspAP's installer leaves it.
    """
    try:
        gid = grp.getgrnam(GUI_GROUP).gr_gid
    except KeyError:
        return None
    try:
        st = env_file.parent.parent.stat()
    except OSError:
        return None
    try:
        uid: int | None = pwd.getpwnam(GUI_GROUP).pw_uid
    except KeyError:
        uid = None
    return gid if st.st_gid == gid or st.st_uid == uid else None


def key_file_access(env_file: Path) -> tuple[int, int | None]:
    """The mode and group the key file should have: ``root:www-data 0640`` when
    RaspAP's GUI is installed (and we are root, so we can give it that group),
    so its RestAPI page can show the key; otherwise ``0600`` and no group."""
    group = gui_group(env_file) if os.geteuid() == 0 else None
    return (0o640, group) if group is not None else (0o600, None)


def generate_key(length: int = KEY_LENGTH) -> str:
    """A key as RaspAP's GUI makes them (``[0-9a-z]``), but from a CSPRNG."""
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(length))


def set_env_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in a dotenv file, keeping every other line.

    The file is ``0600``, or ``root:www-data 0640`` where RaspAP's GUI reads it
    (see key_file_access).
    """
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
    mode, group = key_file_access(path)
    atomic_write(path, ("\n".join(out) + "\n").encode(), mode=mode, group=group)


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
