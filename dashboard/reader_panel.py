"""The reader in the loop, on the image review page: confirm or correct what the pipeline proposed
for one scan. Every action is a board request (:mod:`dashboard.board_queue`) that the writer
applies, audits and follows with the patient's re-assessment; the page shows each scan's status
(proposed / confirmed / rejected) and the history of the reader's values."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard.auth import SessionUser
from dashboard.board_queue import submit
from dashboard.table_format import Column, show_table
from engine.response.inputs import ClinicalStatus
from engine.settings import Settings
from engine.store.board_requests import BoardRequest, RequestKind

HISTORY_COLUMNS: dict[str, Column] = {
    "entered_at": Column("When (UTC)", "datetime"),
    "entered_by": Column("Reader"),
    "value_kind": Column("What"),
    "lesion_index": Column("Lesion", "{:.0f}"),
    "before_json": Column("Before", wide=True),
    "value_json": Column("After", wide=True),
    "note": Column("Note", wide=True),
}


_KIND_WORDS = {"SEGMENTATION": "segmentation", "TARGETS": "target lesions", "DIAMETERS": "diameters",
               "NEW_LESION": "new lesion", "NONMEASURABLE_PROGRESSION": "non-measurable progression",
               "STEROID_DOSE": "steroid dose", "CLINICAL_STATUS": "clinical status"}


def history_rows(history: pd.DataFrame, study_uid: str) -> pd.DataFrame:
    """The reader's entries of one scan, newest first, with the kind in words (pure)."""
    mine = history[history["study_uid"] == study_uid] if not history.empty else history
    return mine.assign(value_kind=[_KIND_WORDS.get(k, k) for k in mine["value_kind"]])


def status_text(history: pd.DataFrame, study_uid: str) -> str:
    """'proposed', or who confirmed / rejected the segmentation and when (pure)."""
    rows = history[(history["study_uid"] == study_uid) & (history["value_kind"] == "SEGMENTATION")] \
        if not history.empty else history
    if rows.empty:
        return "Proposed: the automatic segmentation and measurements are not confirmed by a reader yet."
    latest = rows.iloc[0]  # newest first
    value = json.loads(latest["value_json"])
    when = f"{pd.Timestamp(latest['entered_at']):%Y-%m-%d %H:%M} UTC"
    if value.get("accepted"):
        return f"Confirmed by {latest['entered_by']} on {when}."
    return f"Rejected by {latest['entered_by']} on {when}: {value.get('reason', '')} (volumes not evaluable)."


def diameters_text(history: pd.DataFrame, study_uid: str) -> str | None:
    """The reader's diameters in force on a scan, per lesion, or None when the reader entered none (pure)."""
    if history.empty:
        return None
    rows = history[(history["study_uid"] == study_uid) & (history["value_kind"] == "DIAMETERS")]
    latest = rows.drop_duplicates("lesion_index", keep="first").sort_values("lesion_index")  # newest first
    if latest.empty:
        return None
    parts = []
    for row in latest.itertuples():
        value = json.loads(row.value_json)
        parts.append(f"#{int(row.lesion_index)}: {value['d1_mm']:g} × {value['d2_mm']:g} mm ({row.entered_by})")
    return "Reader's diameters in force: " + "; ".join(parts) + "."


def send(settings: Settings, user: SessionUser, patient_key: str, kind: RequestKind, **payload: str) -> None:
    """Queue one reader request for the writer; the page says so (or why not) on its next run."""
    try:
        request = BoardRequest(kind=kind, user=user.name, patient_key=patient_key,
                               payload={"note": "", **payload})
    except ValueError as exc:
        st.session_state["_reader_error"] = str(exc)
        return
    st.session_state["_reader_sent"] = submit(settings, request).message


def render(settings: Settings, user: SessionUser | None, patient_key: str, study_uid: str, scan: str,
           lesions: pd.DataFrame, history: pd.DataFrame) -> None:
    st.subheader(f"Reader · scan of {scan}")
    st.info(status_text(history, study_uid))
    if (entered := diameters_text(history, study_uid)) is not None:
        st.caption(entered)
    if (error := st.session_state.pop("_reader_error", None)) is not None:
        st.error(f"Not sent: {error}")
    if (sent := st.session_state.pop("_reader_sent", None)) is not None:
        st.success(f"{sent} The response is recomputed from the reader's values when it is applied.")
    if user is None or not user.role.may_act:
        st.caption("Your role may read but not confirm or correct.")
    else:
        _forms(settings, user, patient_key, study_uid, lesions)
    mine = history_rows(history, study_uid)
    if not mine.empty:
        st.markdown("**Reader's values of this scan (newest first)**")
        show_table(mine, HISTORY_COLUMNS)


def _forms(settings: Settings, user: SessionUser, key: str, uid: str, lesions: pd.DataFrame) -> None:
    mine = lesions[lesions["study_uid"] == uid] if not lesions.empty else lesions
    seg, targets, diameters, findings = st.tabs(["Segmentation", "Targets", "Diameters", "Findings"])
    with seg, st.form("reader_seg"):
        reason = st.text_input("Reason (needed to reject)", key="reader_seg_reason")
        c1, c2 = st.columns(2)
        if c1.form_submit_button("Accept segmentation"):
            send(settings, user, key, RequestKind.ACCEPT_SEGMENTATION, study_uid=uid, note=reason)
            st.rerun()
        if c2.form_submit_button("Reject segmentation"):
            send(settings, user, key, RequestKind.REJECT_SEGMENTATION, study_uid=uid, note=reason)
            st.rerun()
    tracked = sorted({int(t) for t in mine["track_id"].dropna()}) if not mine.empty else []
    with targets, st.form("reader_targets"):
        st.caption("Targets are chosen by tracked identity (L<n>) and hold at every timepoint.")
        chosen = st.multiselect("Target lesions", [f"L{t}" for t in tracked], key="reader_targets_pick")
        if st.form_submit_button("Set targets"):
            send(settings, user, key, RequestKind.CHOOSE_TARGETS, study_uid=uid,
                  track_ids=",".join(c[1:] for c in chosen))
            st.rerun()
    with diameters, st.form("reader_diameters"):
        options = [int(i) for i in mine["lesion_index"]] if not mine.empty else []
        lesion = st.selectbox("Lesion", options, format_func=lambda i: f"#{i}", key="reader_d_lesion")
        c1, c2 = st.columns(2)
        d1 = c1.number_input("d1 (mm, longest)", min_value=0.0, max_value=300.0, step=0.5, key="reader_d1")
        d2 = c2.number_input("d2 (mm, perpendicular)", min_value=0.0, max_value=300.0, step=0.5, key="reader_d2")
        note = st.text_input("Note", key="reader_d_note")
        if st.form_submit_button("Save diameters") and lesion is not None:
            send(settings, user, key, RequestKind.SET_DIAMETERS, study_uid=uid, lesion_index=str(lesion),
                  d1_mm=f"{d1:g}", d2_mm=f"{d2:g}", note=note)
            st.rerun()
    with findings, st.form("reader_findings"):
        new = st.radio("New measurable lesion", ["not recorded", "yes", "no"], horizontal=True, key="reader_new")
        c1, c2 = st.columns(2)
        new_d1 = c1.number_input("New lesion d1 (mm)", min_value=0.0, step=0.5, key="reader_new_d1")
        new_d2 = c2.number_input("New lesion d2 (mm)", min_value=0.0, step=0.5, key="reader_new_d2")
        nonmeas = st.radio("Unequivocal non-measurable progression", ["not recorded", "yes", "no"],
                           horizontal=True, key="reader_nonmeas")
        steroid = st.text_input("Steroid dose (mg dexamethasone/day)", key="reader_steroid")
        status = st.selectbox("Clinical status", ["not recorded", *[s.value for s in ClinicalStatus]],
                              key="reader_status")
        if st.form_submit_button("Save findings"):
            if new != "not recorded":
                sizes = {"d1_mm": f"{new_d1:g}", "d2_mm": f"{new_d2:g}"} if new_d1 and new_d2 else {}
                send(settings, user, key, RequestKind.RECORD_NEW_LESION, study_uid=uid,
                      present=str(new == "yes").lower(), **sizes)
            if nonmeas != "not recorded":
                send(settings, user, key, RequestKind.RECORD_NONMEASURABLE_PROGRESSION, study_uid=uid,
                      present=str(nonmeas == "yes").lower())
            if steroid.strip():
                send(settings, user, key, RequestKind.RECORD_STEROID_DOSE, study_uid=uid, mg=steroid.strip())
            if status != "not recorded":
                send(settings, user, key, RequestKind.RECORD_CLINICAL_STATUS, study_uid=uid, status=status)
            st.rerun()
