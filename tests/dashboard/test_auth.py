"""Local dashboard users: bcrypt hashes, roles, the users file and `gliowatch users`."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path

import pytest

from engine.auth import Role, add_user, authenticate, hash_password, load_users, verify_password
from engine.errors import ConfigError
from engine.settings import Settings
from flows import cmd_users


def test_hash_verifies_only_the_right_password() -> None:
    hashed = hash_password("s3cret-enough")
    assert hashed.startswith("$2b$12$") and "s3cret" not in hashed
    assert verify_password("s3cret-enough", hashed)
    assert not verify_password("s3cret-enougH", hashed)
    assert not verify_password("", hashed)
    assert not verify_password("s3cret-enough", "not-a-bcrypt-hash")


def test_short_password_refused() -> None:
    with pytest.raises(ValueError, match="at least 8 characters"):
        hash_password("short")


def test_users_file_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    generated = add_user(path, name="dr.a", role=Role.RADIOLOGIST)
    add_user(path, name="v@example.org", role="viewer", password="viewer-pass-1")
    users = load_users(path)
    assert {u.name: u.role for u in users.values()} == {"dr.a": Role.RADIOLOGIST, "v@example.org": Role.VIEWER}
    assert generated not in path.read_text() and len(generated) >= 16
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert authenticate(users, name="dr.a", password=generated) == users["dr.a"]
    assert authenticate(users, name="dr.a", password="viewer-pass-1") is None
    assert authenticate(users, name="nobody", password=generated) is None
    assert Role.RADIOLOGIST.may_act and Role.ADMIN.may_act and not Role.VIEWER.may_act


def test_existing_user_needs_force(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, name="dr.a", role="viewer", password="first-password")
    with pytest.raises(ConfigError, match="already exists"):
        add_user(path, name="dr.a", role="admin", password="second-password")
    add_user(path, name="dr.a", role="admin", password="second-password", force=True)
    assert load_users(path)["dr.a"].role == Role.ADMIN


@pytest.mark.parametrize("name", ["", "has space", "quote\"", "x" * 65])
def test_bad_user_names_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="Argument 'name'"):
        add_user(tmp_path / "users.toml", name=name, role="viewer", password="long-enough-1")


def test_unknown_role_in_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text('[users.x]\nrole = "surgeon"\npassword_hash = "h"\n')
    with pytest.raises(ConfigError, match="unknown role 'surgeon'"):
        load_users(path)


def test_missing_file_means_no_users(tmp_path: Path) -> None:
    assert load_users(tmp_path / "absent.toml") == {}


def test_users_command_adds_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cmd_users.add_parser(parser.add_subparsers())
    settings = Settings(state_dir=tmp_path)
    args = parser.parse_args(["users", "add", "dr.b", "--role", "radiologist"])
    assert args.handler(args, settings) == 0
    password = capsys.readouterr().out.split("password: ")[1].strip()
    assert authenticate(load_users(tmp_path / "users.toml"), name="dr.b", password=password)
    args = parser.parse_args(["users", "list"])
    assert args.handler(args, settings) == 0
    assert capsys.readouterr().out.strip() == "dr.b\tradiologist"
