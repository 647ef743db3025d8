"""Local dashboard users: a TOML file of names, roles and bcrypt password hashes.

The file (default ``state_dir/users.toml``) looks like::

    [users.radiologist1]
    role = "radiologist"
    password_hash = "$2b$12$..."

Passwords are never stored, only their bcrypt hashes. The file is written atomically (temporary
file, then ``os.replace``) with mode 0600. OIDC (Streamlit's ``st.login``) is the alternative when
it is configured; this file is the embedded default.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import bcrypt

from engine.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_MIN_PASSWORD_CHARS = 8


class Role(StrEnum):
    """What a dashboard user may do. Values are what the users file holds."""

    VIEWER = "viewer"  # reads pages
    RADIOLOGIST = "radiologist"  # + acknowledges alerts, records decisions, corrects events
    ADMIN = "admin"  # + may see identifiers where privacy settings allow them

    @property
    def may_act(self) -> bool:
        return self in (Role.RADIOLOGIST, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str = ""


def hash_password(password: str) -> str:
    """bcrypt hash (cost 12) of ``password`` as text."""
    if len(password) < _MIN_PASSWORD_CHARS:
        msg = f"Argument 'password' must have at least {_MIN_PASSWORD_CHARS} characters"
        raise ValueError(msg)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=12)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches the bcrypt ``password_hash``; False for a malformed hash."""
    if not password or not password_hash:
        return False
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:
        return False


def generate_password() -> str:
    """A random password of 16 URL-safe characters (for the demo user)."""
    return secrets.token_urlsafe(12)


def load_users(path: Path | str) -> dict[str, User]:
    """Read the users file; a missing file means no users (nobody can log in)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Users file {path} is not valid TOML", detail=str(exc)) from exc
    users: dict[str, User] = {}
    for name, entry in dict(data.get("users", {})).items():
        try:
            role = Role(str(entry.get("role", "")))
        except ValueError as exc:
            raise ConfigError(
                f"User '{name}' in {path} has an unknown role {entry.get('role')!r}",
                action=f"Use one of: {', '.join(r.value for r in Role)}.",
            ) from exc
        users[name] = User(name=name, role=role, password_hash=str(entry.get("password_hash", "")))
    return users


def authenticate(users: dict[str, User], *, name: str, password: str) -> User | None:
    """The user when name and password match, else None (the same answer for either mistake)."""
    user = users.get(name)
    if user is None:
        # spend the same time as a real check so a wrong name is not faster than a wrong password
        verify_password(password or "x", _dummy_hash())
        return None
    return user if verify_password(password, user.password_hash) else None


def add_user(
    path: Path | str, *, name: str, role: Role | str, password: str | None = None, force: bool = False
) -> str:
    """Add (or with ``force`` replace) a user; returns the password (generated when not given)."""
    if not _NAME.match(name):
        msg = f"Argument 'name' must be 1-64 letters, digits or _.@- characters, got {name!r}"
        raise ValueError(msg)
    role = Role(role)
    path = Path(path)
    users = load_users(path)
    if name in users and not force:
        raise ConfigError(
            f"User '{name}' already exists in {path}",
            action="Pass --force to replace the password and role.",
        )
    password = password if password is not None else generate_password()
    users[name] = User(name=name, role=role, password_hash=hash_password(password))
    _write_users(path, users)
    return password


def _write_users(path: Path, users: dict[str, User]) -> None:
    lines = ["# GlioWatch dashboard users (bcrypt hashes). Edit with `gliowatch users add`.", ""]
    for user in sorted(users.values(), key=lambda u: u.name):
        lines += [f'[users."{user.name}"]', f'role = "{user.role.value}"',
                  f'password_hash = "{user.password_hash}"', ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines))
    os.replace(tmp, path)


@functools.cache
def _dummy_hash() -> str:
    return bcrypt.hashpw(b"not-a-user-password", bcrypt.gensalt(rounds=12)).decode("ascii")
