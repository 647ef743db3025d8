"""Worklist: patients ordered by what needs attention, with filters and search by key."""

from __future__ import annotations

from datetime import date

import pandas as pd
import streamlit as st

from dashboard import data
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


def render(ref: data.SnapshotRef) -> None:
    st.header("Worklist")
    frame = data.worklist(ref)
    if frame.empty:
        st.info("No studies in the store yet.")
        return
    c1, c2, c3, c4, c5 = st.columns([2, 2, 1, 1, 2])
    statuses = sorted(frame["response"].fillna("not assessed").unique())
    chosen = c1.multiselect("Status", statuses, key="wl_status")
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
    st.caption(f"{len(shown)} of {len(frame)} patients · most urgent first: unacknowledged alerts, "
               "preliminary PD awaiting confirmation, quarantined studies")
    st.dataframe(shown.drop(columns=["attention"]), hide_index=True, width="stretch",
                 column_config={"awaiting_confirmation": st.column_config.CheckboxColumn("PRELIM PD")})
    if shown.empty:
        return
    keys = shown["patient_key"].head(500).tolist()
    c1, c2 = st.columns([3, 1])
    key = c1.selectbox("Patient", keys, key="wl_open_key")
    c2.button("Open timeline", key="wl_open", on_click=open_patient, args=(key, "Patient timeline"))
