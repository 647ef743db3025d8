"""Login gate: Streamlit's OIDC ``st.login`` when ``[auth]`` is configured in Streamlit secrets,
else the local users file (``state_dir/users.toml``, bcrypt hashes; see :mod:`engine.auth`).

An OIDC user's role comes from the users file when their e-mail is listed there, else viewer.
A local login survives a page reload through a server-side session (:mod:`dashboard.sessions`);
OIDC keeps its own cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import streamlit as st

from dashboard import sessions
from engine.auth import Role, authenticate, load_users

_SESSION_KEY = "gliowatch_user"


@dataclass(frozen=True, slots=True)
class SessionUser:
    name: str
    role: Role
    via: str  # "local" or "oidc"


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except (FileNotFoundError, KeyError, st.errors.StreamlitSecretNotFoundError):
        return False


def current_user() -> SessionUser | None:
    return st.session_state.get(_SESSION_KEY)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def require_login(users_path: Path, sessions_dir: Path | None = None) -> SessionUser:
    """The logged-in user; otherwise draws the login form and stops the script run.

    ``sessions_dir`` (default: ``sessions/`` beside the users file) keeps local sessions, so a
    reload resumes the session named by the ``?session=`` token instead of asking again.
    """
    sessions_dir = sessions_dir or users_path.parent / "sessions"
    user = current_user()
    if user is not None:
        return user
    if oidc_configured():
        return _oidc(users_path)
    resumed = _resume(users_path, sessions_dir)
    if resumed is not None:
        return resumed
    return _local(users_path, sessions_dir)


def _client() -> str:
    """The fingerprint of the browser and address this page is served to (empty parts when the
    server does not know them, as under AppTest)."""
    try:
        address, agent = st.context.ip_address, st.context.headers.get("User-Agent")
    except (AttributeError, RuntimeError, KeyError):
        address = agent = None
    # only real values count (a test harness may hand back placeholders)
    return sessions.client_fingerprint(address if isinstance(address, str) else None,
                                       agent if isinstance(agent, str) else None)


def _resume(users_path: Path, sessions_dir: Path) -> SessionUser | None:
    """The user of the live session the URL names; the role is read from the users file now."""
    token = st.query_params.get(sessions.SESSION_PARAM)
    if not token:
        return None
    name = sessions.resume_session(sessions_dir, token, now=_now(), client=_client())
    known = load_users(users_path).get(name) if name else None
    if known is None:
        del st.query_params[sessions.SESSION_PARAM]
        return None
    user = SessionUser(name=known.name, role=known.role, via="local")
    st.session_state[_SESSION_KEY] = user
    return user


def _oidc(users_path: Path) -> SessionUser:
    if not st.user.is_logged_in:
        st.title("GlioWatch")
        st.button("Log in with your organisation account", on_click=st.login)
        st.stop()
    name = str(st.user.get("email") or st.user.get("name") or "oidc-user")
    known = load_users(users_path).get(name)
    user = SessionUser(name=name, role=known.role if known else Role.VIEWER, via="oidc")
    st.session_state[_SESSION_KEY] = user
    return user


def _local(users_path: Path, sessions_dir: Path) -> SessionUser:
    st.title("GlioWatch — log in")
    users = load_users(users_path)
    if not users:
        st.error(f"No dashboard users exist yet. Create one with `gliowatch users add NAME --role "
                 f"radiologist` (users file: {users_path}).")
        st.stop()
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        found = authenticate(users, name=name.strip(), password=password)
        if found is None:
            st.error("Unknown user name or wrong password.")
        else:
            user = SessionUser(name=found.name, role=found.role, via="local")
            st.session_state[_SESSION_KEY] = user
            st.query_params[sessions.SESSION_PARAM] = sessions.create_session(
                sessions_dir, user_name=found.name, now=_now(), client=_client())
            st.rerun()
    st.stop()
    raise AssertionError("unreachable")  # pragma: no cover - st.stop() ends the run


def logout(sessions_dir: Path | None = None) -> None:
    """Widget callback: forget the user, and the URL's local session (``sessions_dir``)."""
    user = current_user()
    st.session_state.pop(_SESSION_KEY, None)
    token = st.query_params.get(sessions.SESSION_PARAM)
    if token:
        if sessions_dir is not None:
            sessions.end_session(sessions_dir, token)
        del st.query_params[sessions.SESSION_PARAM]
    if user is not None and user.via == "oidc":
        st.logout()
