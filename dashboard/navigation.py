"""Which page and which patient a session is on (session state + the ``?patient=`` link)."""

from __future__ import annotations

import streamlit as st

PAGES: tuple[str, ...] = ("Worklist", "Alerts", "Patient timeline", "Image review", "Actions", "Stream health")
#: pages about every patient, not the one chosen in the sidebar.
COHORT_PAGES: frozenset[str] = frozenset({"Worklist", "Alerts", "Stream health"})
PAGE_KEY = "page"
PATIENT_KEY = "patient_key"


def open_patient(patient_key: str, page: str = "Patient timeline") -> None:
    """Widget callback: show ``page`` for ``patient_key`` (runs before the next script run)."""
    st.session_state[PATIENT_KEY] = patient_key
    st.session_state[PAGE_KEY] = page
    st.query_params["patient"] = patient_key


def init_from_link() -> None:
    """A link ``/?patient=KEY`` (alerts carry one) opens that patient's timeline once."""
    linked = st.query_params.get("patient")
    if linked and st.session_state.get("_linked") != linked:
        st.session_state["_linked"] = linked
        st.session_state[PATIENT_KEY] = linked
        st.session_state[PAGE_KEY] = "Patient timeline"
    st.session_state.setdefault(PAGE_KEY, PAGES[0])
    st.session_state.setdefault(PATIENT_KEY, "")


def current_patient() -> str:
    return str(st.session_state.get(PATIENT_KEY) or "")
