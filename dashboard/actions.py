"""Tumour-board actions: acknowledge an alert, record a decision and a note, correct the RT end
date. Each becomes a request for the one writer (:mod:`dashboard.board_queue`), audited there."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.auth import SessionUser
from dashboard.board_queue import queued_count, submit
from engine.settings import Settings
from engine.store.board import BoardRequest, Decision, RequestKind


def _send(settings: Settings, request: BoardRequest) -> None:
    result = submit(settings, request)
    st.session_state["_last_action"] = result.message
    if result.applied_now:
        st.cache_data.clear()  # the snapshot was republished; read it again


def render(ref: data.SnapshotRef, patient_key: str, settings: Settings, user: SessionUser) -> None:
    st.header(f"Tumour-board actions · {patient_key}")
    if not user.role.may_act:
        st.info(f"Your role ({user.role.value}) may read but not act. Ask an admin for the "
                "radiologist role.")
        return
    if message := st.session_state.pop("_last_action", None):
        (st.success if message == "Saved." else st.info)(message)
    waiting = queued_count(settings)
    if waiting:
        st.caption(f"{waiting} request(s) waiting for the pipeline to apply them.")
    bundle = data.patient_bundle(ref, patient_key)
    _acknowledge(settings, user, patient_key, bundle["alerts"])
    _decision(settings, user, patient_key, bundle["images"])
    _rt_end(settings, user, patient_key, bundle["events"])


def _acknowledge(settings: Settings, user: SessionUser, patient_key: str, alerts: pd.DataFrame) -> None:
    st.subheader("Acknowledge an alert")
    open_alerts = alerts[alerts["acknowledged_at"].isna()] if not alerts.empty else alerts
    if open_alerts.empty:
        st.caption("No unacknowledged alerts for this patient.")
        return
    options = {f"{r.alert_type} · {r.study_date} · {r.reason}": str(r.alert_id)
               for r in open_alerts.itertuples()}
    with st.form("ack_form", clear_on_submit=True):
        choice = st.selectbox("Alert", list(options), key="ack_alert")
        note = st.text_input("Note (optional)", key="ack_note")
        if st.form_submit_button("Acknowledge"):
            _send(settings, BoardRequest(kind=RequestKind.ACKNOWLEDGE_ALERT, user=user.name,
                                         patient_key=patient_key,
                                         payload={"alert_id": options[choice], "note": note}))
            st.rerun()


def _decision(settings: Settings, user: SessionUser, patient_key: str, studies: pd.DataFrame) -> None:
    st.subheader("Record a decision")
    scans = {str(pd.Timestamp(r.study_date).date()): str(r.study_uid) for r in studies.itertuples()}
    with st.form("decision_form", clear_on_submit=True):
        decision = st.selectbox("Decision", [d.value for d in Decision], key="dec_choice")
        scan = st.selectbox("About the scan of", list(reversed(scans)), key="dec_scan")
        note = st.text_area("Note", key="dec_note")
        if st.form_submit_button("Record decision"):
            if not note.strip():
                st.error("A decision needs a note.")
                return
            _send(settings, BoardRequest(kind=RequestKind.RECORD_DECISION, user=user.name,
                                         patient_key=patient_key,
                                         payload={"decision": decision, "note": note.strip(),
                                                  "study_uid": scans.get(scan, "")}))
            st.rerun()


def _rt_end(settings: Settings, user: SessionUser, patient_key: str, events: pd.DataFrame) -> None:
    st.subheader("Correct the RT end date")
    rt_end = events[events["event"] == "RT_END"]["event_date"] if not events.empty else pd.Series()
    current = pd.Timestamp(rt_end.iloc[-1]).date() if len(rt_end) else None
    st.caption(f"Stored RT end: {current or 'not recorded'}. The patient is re-assessed after a change.")
    with st.form("rt_form", clear_on_submit=True):
        new = st.date_input("RT end date", value=current or date.today(), key="rt_date")
        note = st.text_input("Reason for the correction", key="rt_note")
        if st.form_submit_button("Correct RT end"):
            if not note.strip():
                st.error("A correction needs a reason.")
                return
            _send(settings, BoardRequest(kind=RequestKind.CORRECT_EVENT, user=user.name,
                                         patient_key=patient_key,
                                         payload={"event": "RT_END", "event_date": new.isoformat(),
                                                  "note": note.strip()}))
            st.rerun()
