"""A local login survives a reload (dashboard.sessions): opaque token in the URL, its hash on the
server, expiry, logout revokes it."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.sessions import SESSION_PARAM, client_fingerprint, create_session, end_session, resume_session
from tests.dashboard.conftest import APP_PATH, log_in
from tests.dashboard.store_factory import RADIOLOGIST, Built

T0 = datetime(2025, 6, 1, 12, 0)


def test_a_session_resumes_until_it_expires_or_ends(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    token = create_session(folder, user_name="dr.a", now=T0, lifetime=timedelta(hours=12))
    assert resume_session(folder, token, now=T0 + timedelta(hours=11)) == "dr.a"
    assert resume_session(folder, token, now=T0 + timedelta(hours=12)) is None, "expired"
    assert not list(folder.glob("*.json")), "an expired session is deleted"
    token = create_session(folder, user_name="dr.a", now=T0)
    end_session(folder, token)
    assert resume_session(folder, token, now=T0) is None, "logged out"


def test_a_session_is_bound_to_the_client_that_logged_in(tmp_path: Path) -> None:
    """The same URL opened from another machine or browser asks for a login."""
    folder = tmp_path / "sessions"
    here = client_fingerprint("10.1.2.3", "Mozilla/5.0 (X11) Firefox/140")
    token = create_session(folder, user_name="dr.a", now=T0, client=here)
    assert resume_session(folder, token, now=T0, client=here) == "dr.a"
    assert resume_session(folder, token, now=T0, client=client_fingerprint("10.9.9.9", "Mozilla/5.0 (X11) Firefox/140")) is None
    assert resume_session(folder, token, now=T0, client=client_fingerprint("10.1.2.3", "Chrome/150")) is None
    assert resume_session(folder, token, now=T0) is None, "no client given is another client"
    assert here not in token and "10.1.2.3" not in (folder / next(folder.iterdir()).name).read_text()


def test_the_server_keeps_only_a_hash_and_refuses_forged_tokens(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    token = create_session(folder, user_name="dr.a", now=T0)
    (stored,) = folder.glob("*.json")
    assert token not in stored.name and token not in stored.read_text()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "password" not in stored.read_text()
    for forged in ("", "dr.a", token[:-1] + ("A" if token[-1] != "A" else "B"), "../" * 20, stored.stem):
        assert resume_session(folder, forged, now=T0) is None, forged


def _logged_in_token(at: AppTest) -> str:
    at.run()
    log_in(at)
    assert [h.value for h in at.header] == ["Worklist"]
    token = at.query_params[SESSION_PARAM]
    assert RADIOLOGIST[1] not in str(dict(at.query_params)), "no password in the URL"
    return str(token if isinstance(token, str) else token[0])


def _reload(token: str) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.query_params[SESSION_PARAM] = token
    at.run()
    assert not at.exception, at.exception
    return at


def test_reloading_the_page_keeps_the_reader_logged_in_until_logout(built_state: Built) -> None:
    token = _logged_in_token(AppTest.from_file(str(APP_PATH), default_timeout=60))
    at = _reload(token)  # a new browser session with the same URL
    assert [h.value for h in at.header] == ["Worklist"], "no login form after a reload"
    assert any(RADIOLOGIST[0] in m.value for m in at.sidebar.markdown)
    next(b for b in at.sidebar.button if b.label == "Log out").click().run()
    assert SESSION_PARAM not in at.query_params
    again = _reload(token)
    assert [t.value for t in again.title] == ["GlioWatch — log in"], "a logged-out token resumes nothing"
    forged = _reload("x" * 43)
    assert [t.value for t in forged.title] == ["GlioWatch — log in"]


def test_doctests() -> None:
    import doctest

    import dashboard.sessions

    failures, tried = doctest.testmod(dashboard.sessions, raise_on_error=False)[:2]
    assert tried >= 1 and failures == 0
