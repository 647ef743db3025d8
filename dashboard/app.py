"""GlioWatch tumour-board dashboard: ``streamlit run dashboard/app.py`` (or ``gliowatch dashboard``).

Reads only the published read-only snapshot (``settings.snapshot_path``); writes go through the
request queue (:mod:`dashboard.board_queue`). Settings come from the usual loader (TOML file named
by ``GLIOWATCH_CONFIG`` plus ``GLIOWATCH_*`` variables), read once per script run.
"""

from __future__ import annotations

import streamlit as st

from dashboard import actions, alerts_page, auth, data, images, navigation, stream, timeline, worklist
from dashboard.banner import model_banner
from dashboard.board_queue import submit
from engine.settings import load_settings
from engine.store.board_requests import BoardRequest, RequestKind


def _record_view(settings, user: auth.SessionUser, page: str, patient_key: str) -> None:  # noqa: ANN001
    """One audit entry per page view (a change of page or patient), through the queue."""
    seen = (page, "" if page in navigation.COHORT_PAGES else patient_key)
    if st.session_state.get("_last_view") == seen:
        return
    st.session_state["_last_view"] = seen
    request = BoardRequest(kind=RequestKind.PAGE_VIEW, user=user.name, patient_key=seen[1] or None,
                           payload={"page": page})
    submit(settings, request)


def main() -> None:
    st.set_page_config(page_title="GlioWatch", layout="wide")
    settings = load_settings()
    sessions_dir = settings.state_dir / "sessions"
    user = auth.require_login(settings.state_dir / "users.toml", sessions_dir)
    navigation.init_from_link()
    ref = data.snapshot_ref(settings.snapshot_path)
    if ref is None or data.builtin_model_used(ref):
        st.warning(model_banner(data.models_used(ref) if ref is not None else []), icon="⚠️")
    with st.sidebar:
        st.markdown(f"**{user.name}** · {user.role.value}")
        page = st.radio("Page", navigation.PAGES, key=navigation.PAGE_KEY)
        st.text_input("Patient (pseudonymous key)", key=navigation.PATIENT_KEY)
        st.button("Log out", on_click=auth.logout, args=(sessions_dir,))
    if ref is None:
        st.error(f"No snapshot has been published yet ({settings.snapshot_path}). Start the pipeline "
                 "(`gliowatch watch` or `gliowatch demo`); it publishes one after each cycle.")
        st.stop()
    patient_key = navigation.current_patient()
    _record_view(settings, user, page, patient_key)
    if page == "Worklist":
        worklist.render(ref)
    elif page == "Alerts":
        alerts_page.render(ref)
    elif page == "Stream health":
        stream.render(ref, settings)
    elif not patient_key:
        st.info("Choose a patient on the worklist (or type a pseudonymous key in the sidebar).")
    elif page == "Patient timeline":
        timeline.render(ref, patient_key)
    elif page == "Image review":
        images.render(ref, patient_key, settings, user)
    else:
        actions.render(ref, patient_key, settings, user)


main()
