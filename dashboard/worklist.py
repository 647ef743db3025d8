"""Worklist: patients ranked by clinical urgency (:mod:`engine.urgency`), with filters, search by
key, the latest call, the next action, and rows that open the patient."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.table_format import Column, show_table
from dashboard.navigation import open_patient


def filter_worklist(
    frame: pd.DataFrame,
    *,
    statuses: list[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    mgmt: str | None = None,
    model_version: str | None = None,
    search: str = "",
) -> pd.DataFrame:
    """Rows matching every given filter, order kept (pure; tested without Streamlit)."""
    mask = pd.Series(True, index=frame.index)
    if statuses:
        mask &= frame["response"].fillna("not assessed").isin(statuses)
    scan = pd.to_datetime(frame["last_scan_date"]).dt.date
    if since is not None:
        mask &= scan >= since
    if until is not None:
        mask &= scan <= until
    if mgmt:
        mask &= frame["mgmt"].fillna("unknown") == mgmt
    if model_version:
        mask &= frame["model_version"].fillna("").str.contains(model_version, regex=False)
    if search.strip():
        mask &= frame["patient_key"].str.contains(search.strip(), case=False, regex=False)
    return frame[mask]


#: the worklist's columns as the page shows them (header, help); the rest stay hidden.
_SHOWN: dict[str, tuple[str, str]] = {
    "patient_key": ("Patient", "Pseudonymous key"),
    "priority": ("Priority", "Confirmed PD, preliminary PD, 2D/3D discordant, flagged scans, new alerts"),
    "latest_call": ("Latest call", "Response of the latest assessed scan (final once later scans are known)"),
    "latest_call_date": ("Call date", "Scan date of the latest call"),
    "next_action": ("Next action", ""),
    "priority_reason": ("Why", "The facts behind the priority; the full text is listed below the table"),
    "last_scan_date": ("Last scan", ""),
    "n_studies": ("Scans", "Studies in the store"),
    "open_alerts": ("Open alerts", "Unacknowledged alerts (the order does not depend on their number)"),
    "top_severity": ("Highest open alert", ""),
    "mgmt": ("MGMT", "MGMT promoter methylation"),
    "model_version": ("Model version", "Segmentation model version(s) behind the numbers"),
}
_MAX_REASONS = 100


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The shown columns, with dates as text and blanks instead of None (pure)."""
    shown = frame[list(_SHOWN)].copy()
    for column in ("latest_call_date", "last_scan_date"):
        shown[column] = [f"{pd.Timestamp(v):%Y-%m-%d}" if v is not None and not pd.isna(v) else "—"
                         for v in shown[column]]
    for column in ("model_version", "mgmt", "top_severity", "latest_call"):
        shown[column] = shown[column].fillna("").replace("", "—")
    return shown


def render(ref: data.SnapshotRef) -> None:
    st.header("Worklist")
    frame = data.worklist(ref)
    if frame.empty:
        st.info("No studies in the store yet.")
        return
    c1, c2, c3, c4, c5 = st.columns([2, 2, 1, 1, 2])
    statuses = sorted(frame["response"].fillna("not assessed").unique())
    chosen = c1.multiselect("Latest call", statuses, key="wl_status")
    scans = pd.to_datetime(frame["last_scan_date"]).dropna()
    first = scans.min().date() if len(scans) else date.today()
    last = scans.max().date() if len(scans) else date.today()
    span = c2.date_input("Last scan between", value=(first, last), key="wl_dates")
    mgmt = c3.selectbox("MGMT", ["", *sorted(frame["mgmt"].fillna("unknown").unique())], key="wl_mgmt")
    versions = sorted({v.strip() for vs in frame["model_version"].dropna() for v in str(vs).split(",")})
    version = c4.selectbox("Model version", ["", *versions], key="wl_model")
    search = c5.text_input("Search pseudonymous key", key="wl_search")
    since, until = (span[0], span[1]) if isinstance(span, tuple) and len(span) == 2 else (None, None)
    shown = filter_worklist(frame, statuses=chosen, since=since, until=until, mgmt=mgmt or None,
                            model_version=version or None, search=search)
    st.caption(f"{len(shown)} of {len(frame)} patients · most urgent first: confirmed progression, "
               "preliminary PD awaiting confirmation, 2D/3D discordant, flagged scans not reviewed, new "
               "alerts by severity; then the most recent scan. Click a row to open the patient.")
    keys = shown["patient_key"].tolist()
    st.dataframe(display_frame(shown), hide_index=True, width="stretch", key="wl_table",
                 on_select=lambda: _open_selected(keys), selection_mode="single-row",
                 column_config={c: st.column_config.TextColumn(label, help=text or None,
                                                               width="large" if c == "priority_reason" else None)
                                for c, (label, text) in _SHOWN.items()
                                if c not in ("n_studies", "open_alerts")}
                 | {"n_studies": st.column_config.NumberColumn("Scans", format="%d"),
                    "open_alerts": st.column_config.NumberColumn("Open alerts", help=_SHOWN["open_alerts"][1],
                                                                 format="%d")})
    if shown.empty:
        return
    with st.expander("Why each patient is where it is (full reasons)"):
        st.markdown("\n".join(f"- **{r.patient_key}** · {r.priority}: {r.priority_reason}. "
                               f"Next: {r.next_action}." for r in shown.head(_MAX_REASONS).itertuples()))
    c1, c2 = st.columns([3, 1])
    key = c1.selectbox("Patient", keys[:500], key="wl_open_key")
    c2.button("Open timeline", key="wl_open", on_click=open_patient, args=(key, "Patient timeline"))
    _review_queue(data.review_queue(ref))


def _review_queue(review: pd.DataFrame) -> None:
    """Scans that need a reader first, oldest first, with the reason; a reader's confirmation in
    image review (or a board decision on the scan) clears them."""
    st.subheader(f"Review queue · {len(review)} open item(s)")
    if review.empty:
        st.caption("No scan waits for a reader.")
        return
    show_table(review, {"patient_key": Column("Patient"), "study_date": Column("Scan date", "date"),
                        "reason": Column("Why a reader is needed", wide=True)}, key="wl_review")
    c1, c2 = st.columns([3, 1])
    key = c1.selectbox("Patient to review", list(dict.fromkeys(review["patient_key"])), key="wl_review_key")
    c2.button("Open image review", key="wl_review_open", on_click=open_patient, args=(key, "Image review"))


def _open_selected(keys: list[str]) -> None:
    """Row-selection callback: open the selected patient's timeline."""
    rows = st.session_state["wl_table"].selection.rows
    if rows and rows[0] < len(keys):
        open_patient(keys[rows[0]], "Patient timeline")
