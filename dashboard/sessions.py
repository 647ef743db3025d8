"""Local-login sessions that survive a page reload: an opaque random token in the URL
(``?session=…``), its SHA-256 kept server-side in ``state_dir/sessions/`` with the user name and an
expiry.

Why this shape: Streamlit forgets ``st.session_state`` on reload, and it cannot set an HttpOnly
cookie. The token carries no user data and no password; the server keeps only its hash (a leaked
sessions folder gives no usable token); it expires (``SESSION_HOURS``); logging out deletes it,
so a copied URL stops working at once; the user's role is read from the users file at every
resume, so a removed user or a changed role takes effect on the next reload. A session is bound
to the client that logged in (a hash of its address and browser, ``client``): the same URL opened
from another machine or browser finds no session and asks for a login. The remaining risk of a
token in a URL: someone using the same browser on the same machine (or behind the same proxy
with the same browser) while the session lasts is logged in as that user; share patient links
as ``/?patient=KEY``, which the alert messages already do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from datetime import datetime, timedelta
from pathlib import Path

SESSION_PARAM = "session"
SESSION_HOURS = 12.0
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{40,64}$")


def _path(sessions_dir: Path, token: str) -> Path:
    return sessions_dir / f"{hashlib.sha256(token.encode('ascii')).hexdigest()}.json"


def client_fingerprint(address: str | None, user_agent: str | None) -> str:
    """The hash a session is bound to: the client's address and browser (empty when unknown).

    >>> client_fingerprint("10.0.0.1", "Firefox") == client_fingerprint("10.0.0.2", "Firefox")
    False
    """
    return hashlib.sha256(f"{address or ''}\n{user_agent or ''}".encode()).hexdigest()


def create_session(sessions_dir: Path, *, user_name: str, now: datetime, client: str = "",
                   lifetime: timedelta = timedelta(hours=SESSION_HOURS)) -> str:
    """A new token for ``user_name`` from ``client`` (:func:`client_fingerprint`), valid until
    ``now + lifetime``; expired sessions are swept."""
    sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sweep_expired(sessions_dir, now=now)
    token = secrets.token_urlsafe(32)
    target = _path(sessions_dir, token)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"user": user_name, "client": client, "expires_at": (now + lifetime).isoformat()}, fh)
    os.replace(tmp, target)
    return token


def resume_session(sessions_dir: Path, token: str, *, now: datetime, client: str = "") -> str | None:
    """The user name of a live session opened by ``client``, else None (unknown, malformed or
    expired token, or another client)."""
    if not _TOKEN.match(token or ""):
        return None
    path = _path(sessions_dir, token)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        expires_at = datetime.fromisoformat(str(record["expires_at"]))
        user = str(record["user"])
        bound_to = str(record.get("client", ""))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if now >= expires_at:
        path.unlink(missing_ok=True)
        return None
    if not secrets.compare_digest(bound_to, client):
        return None
    return user


def end_session(sessions_dir: Path, token: str) -> None:
    """Forget the session (logout): its token no longer resumes anything."""
    if _TOKEN.match(token or ""):
        _path(sessions_dir, token).unlink(missing_ok=True)


def sweep_expired(sessions_dir: Path, *, now: datetime) -> int:
    """Delete expired and unreadable session files; returns how many."""
    removed = 0
    for path in sessions_dir.glob("*.json"):
        try:
            expired = now >= datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["expires_at"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            expired = True
        if expired:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
