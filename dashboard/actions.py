"""Tumour-board actions: acknowledge an alert, record a decision and a note, correct the RT end
date. Each becomes a request for the one writer (:mod:`dashboard.board_queue`), audited there;
the page lists this patient's requests that are still waiting, says whether a pipeline is running
to apply them, and shows the reason when the writer refused one sent from this session."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.auth import SessionUser
from dashboard.board_queue import refused, submit, waiting_actions, writer_status
from dashboard.table_format import Column, show_table
from engine.settings import Settings
from engine.store.board_requests import BoardRequest, Decision, RequestKind
from engine.store.writer_presence import WriterState

#: how often a page with waiting requests looks for a newly published snapshot (seconds).
REFRESH_S = 2.0
_SENT = "_board_requests_sent"  # request ids sent from this session, until the writer refuses one
_LABELS = {RequestKind.ACKNOWLEDGE_ALERT: "acknowledge an alert", RequestKind.RECORD_DECISION: "record a decision",
           RequestKind.CORRECT_EVENT: "correct a clinical event"}


def _send(settings: Settings, request: BoardRequest) -> None:
    result = submit(settings, request)
    st.session_state["_last_action"] = result.message
    st.session_state.setdefault(_SENT, set()).add(result.request_id)


def render(ref: data.SnapshotRef, patient_key: str, settings: Settings, user: SessionUser) -> None:
    st.header(f"Tumour-board actions · {patient_key}")
    if not user.role.may_act:
        st.info(f"Your role ({user.role.value}) may read but not act. Ask an admin for the "
                "radiologist role.")
        return
    message = st.session_state.pop("_last_action", None)
    if message:
        st.info(message)
    _show_queue(ref, settings, patient_key, say_writer=not message)
    bundle = data.patient_bundle(ref, patient_key)
    _acknowledge(settings, user, patient_key, bundle["alerts"])
    _decision(settings, user, patient_key, bundle["images"], bundle["decisions"], bundle["timeline"])
    _rt_end(settings, user, patient_key, bundle["events"])


def _show_queue(ref: data.SnapshotRef, settings: Settings, patient_key: str, *, say_writer: bool) -> None:
    """Requests still waiting for the writer, and the ones it refused (from this session)."""
    sent: set[str] = st.session_state.get(_SENT, set())
    for failure in refused(settings, sent):
        st.error(f"Not applied: {failure.reason}")
        sent.discard(failure.request.request_id)
    waiting = waiting_actions(settings, patient_key)
    if not waiting:
        return
    status = writer_status(settings)
    lines = [f"- {_LABELS.get(r.kind, r.kind.value.replace('_', ' ').lower())} by {r.user}, sent {r.requested_at:%Y-%m-%d %H:%M:%S} UTC"
             for r in waiting]
    text = f"{len(waiting)} request(s) waiting for the pipeline to apply them:\n" + "\n".join(lines)
    if say_writer:  # else the message of the action just sent said it
        text += f"\n\n{status.message}"
    (st.info if status.state == WriterState.RUNNING else st.warning)(text)
    _rerun_when_published(ref, settings)


@st.fragment(run_every=REFRESH_S)
def _rerun_when_published(ref: data.SnapshotRef, settings: Settings) -> None:
    """While requests wait, the page shows the writer's result as soon as it publishes it."""
    if data.snapshot_ref(settings.snapshot_path) != ref:
        st.rerun(scope="app")


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


def duplicate_of(decisions: pd.DataFrame, *, decision: str, study_uid: str) -> str | None:
    """A line describing the same decision already recorded for the same scan, or None (pure)."""
    if decisions.empty or "decision" not in decisions.columns:
        return None
    same = decisions[(decisions["decision"] == decision) & (decisions["study_uid"] == study_uid)]
    if same.empty:
        return None
    last = same.sort_values("decided_at").iloc[-1]
    return f"{decision} was already recorded for this scan by {last['decided_by']} on {pd.Timestamp(last['decided_at']):%Y-%m-%d %H:%M}"


def _decision(settings: Settings, user: SessionUser, patient_key: str, studies: pd.DataFrame,
              decisions: pd.DataFrame, timeline: pd.DataFrame) -> None:
    """A decision is about one scan (the latest by default) and has no default: the board chooses it."""
    st.subheader("Record a decision")
    scans = {str(pd.Timestamp(r.study_date).date()): str(r.study_uid) for r in studies.itertuples()}
    calls = {str(r.study_uid): str(r.final_response or r.response) for r in timeline.itertuples()} \
        if not timeline.empty else {}
    with st.form("decision_form", clear_on_submit=True):
        scan = st.selectbox("About the scan of", list(reversed(scans)), key="dec_scan",
                            format_func=lambda d: f"{d} · {calls.get(scans[d], 'not assessed')}")
        decision = st.selectbox("Decision", [d.value for d in Decision], index=None, key="dec_choice",
                                placeholder="Choose the board's decision")
        note = st.text_area("Note", key="dec_note")
        again = st.checkbox("Record it again even if the same decision exists for this scan", key="dec_again")
        if st.form_submit_button("Record decision"):
            if decision is None or not note.strip():
                st.error("A decision needs a choice and a note.")
                return
            duplicate = duplicate_of(decisions, decision=decision, study_uid=scans.get(scan, ""))
            if duplicate and not again:
                st.warning(f"Not recorded: {duplicate}. Tick 'Record it again' to record a second one.")
                return
            _send(settings, BoardRequest(kind=RequestKind.RECORD_DECISION, user=user.name,
                                         patient_key=patient_key,
                                         payload={"decision": decision, "note": note.strip(),
                                                  "study_uid": scans.get(scan, "")}))
            st.rerun()
    if not decisions.empty:
        st.markdown("**Decisions recorded**")
        shown = decisions.sort_values("decided_at", ascending=False).assign(
            scan=lambda f: f["study_uid"].map({u: d for d, u in scans.items()}))
        show_table(shown, {"decided_at": Column("When (UTC)", "datetime"), "scan": Column("Scan"),
                           "decision": Column("Decision"), "decided_by": Column("By"),
                           "note": Column("Note", wide=True)})


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
