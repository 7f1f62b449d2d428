"""The admin key: generated on first start, re-read on change, never logged."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from raspapi.app import create_app
from raspapi.security.adminkey import AdminKey, generate_key, set_env_value
from raspapi.settings import Settings
from tests.conftest import KEY, MakeClient

NEW = "zyxwvutsrqponmlkjihgfedcba987654"


def test_generated_keys_look_like_raspaps():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(re.fullmatch(r"[0-9a-z]{32}", k) for k in keys)


def test_new_key_in_the_file_works_without_restart(settings: Settings, make_client: MakeClient):
    client = make_client()
    assert client.get("/", headers={"access_token": KEY}).status_code == 200
    set_env_value(settings.env_file, "RASPAP_API_KEY", NEW)
    assert client.get("/", headers={"access_token": NEW}).status_code == 200
    assert client.get("/", headers={"access_token": KEY}).status_code == 401


def test_key_edited_in_place_is_picked_up(settings: Settings, make_client: MakeClient):
    client = make_client()
    # Same size, same inode: an editor writing in place. The mtime moves on.
    with open(settings.env_file, "r+") as fh:
        fh.write(f"RASPAP_API_KEY={NEW}\n")
    st = settings.env_file.stat()
    os.utime(settings.env_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert client.get("/", headers={"access_token": NEW}).status_code == 200


def test_environment_key_wins_over_the_file(make_client: MakeClient):
    client = make_client(api_key_override=NEW)
    assert client.get("/", headers={"access_token": NEW}).status_code == 200
    assert client.get("/", headers={"access_token": KEY}).status_code == 401


def test_no_key_file_generates_one_and_logs_only_its_path(
    settings: Settings, caplog: pytest.LogCaptureFixture
):
    settings.env_file.unlink()
    caplog.set_level("INFO")
    with TestClient(create_app(settings)) as client:
        content = settings.env_file.read_text()
        match = re.fullmatch(r"RASPAP_API_KEY=([0-9a-z]{32})\n", content)
        assert match, content
        key = match.group(1)
        assert stat.S_IMODE(settings.env_file.stat().st_mode) == 0o600
        assert str(settings.env_file) in caplog.text
        assert key not in caplog.text
        assert client.get("/", headers={"access_token": key}).status_code == 200


def test_unwritable_key_file_means_everything_is_refused(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # even root cannot create a file below a file
    env_file = blocker / ".env"
    with TestClient(create_app(settings.with_(env_file=env_file))) as client:
        assert client.get("/", headers={"access_token": ""}).status_code == 401
        assert client.get("/", headers={"access_token": KEY}).status_code == 401
    assert f"cannot write one to {env_file}" in caplog.text


def test_set_env_value_keeps_other_lines(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("# RaspAP\nOTHER=1\nRASPAP_API_KEY=old\nexport RASPAP_API_KEY=older\n")
    set_env_value(env_file, "RASPAP_API_KEY", NEW)
    assert env_file.read_text() == f"# RaspAP\nOTHER=1\nRASPAP_API_KEY={NEW}\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert AdminKey(env_file).current() == NEW
    with pytest.raises(ValueError):
        set_env_value(env_file, "RASPAP_API_KEY", "two words")


def test_quoted_key_is_read_as_dotenv_does(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text(f'RASPAP_API_KEY="{NEW}"\n')
    assert AdminKey(env_file).current() == NEW


def raspap_gui(folder: Path) -> int:
    """Make ``folder`` look like RaspAP's /etc/raspap (www-data's); www-data's gid."""
    import grp

    if os.geteuid() != 0:
        pytest.skip("only root can give a file to www-data")
    try:
        gid = grp.getgrnam("www-data").gr_gid
    except KeyError:
        pytest.skip("no www-data group on this machine")
    os.chown(folder, -1, gid)
    return gid


def test_key_file_is_root_only_without_raspaps_gui(tmp_path: Path):
    env_file = tmp_path / "raspap" / "api" / ".env"
    set_env_value(env_file, "RASPAP_API_KEY", generate_key())
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_key_file_is_readable_by_raspaps_gui_when_it_is_installed(tmp_path: Path):
    # RaspAP's RestAPI page reads /etc/raspap/api/.env as www-data to show the key.
    folder = tmp_path / "raspap"
    (folder / "api").mkdir(parents=True)
    gid = raspap_gui(folder)
    env_file = folder / "api" / ".env"
    env_file.write_text("OTHER=1\n")
    env_file.chmod(0o644)
    set_env_value(env_file, "RASPAP_API_KEY", "k" * 32)
    st = env_file.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid)
    assert env_file.read_text() == "OTHER=1\nRASPAP_API_KEY=" + "k" * 32 + "\n"
