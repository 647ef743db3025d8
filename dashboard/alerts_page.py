"""Alerts page: every patient's alerts, open and acknowledged, with who acknowledged each one,
when and why (an acknowledged alert keeps its history here); rows open the patient."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.navigation import open_patient
from dashboard.table_format import BLANK, format_cell

STATES: tuple[str, ...] = ("Open", "Acknowledged", "All")

#: shown columns: header, help.
_SHOWN: dict[str, tuple[str, str]] = {
    "patient_key": ("Patient", "Pseudonymous key"),
    "severity": ("Severity", ""),
    "alert": ("Alert", ""),
    "study_date": ("Scan date", ""),
    "reason": ("Reason", ""),
    "values": ("Rests on", "Proposed: automatic values no reader has confirmed yet; confirmed or rejected by a reader"),
    "raised": ("Raised (UTC)", ""),
    "status": ("Status", ""),
    "acknowledged_by": ("Acknowledged by", ""),
    "acknowledged": ("Acknowledged (UTC)", ""),
    "acknowledged_note": ("Why (note)", "The note written when the alert was acknowledged"),
}


def alert_rows(alerts: pd.DataFrame, *, state: str = "All", severities: list[str] | None = None,
               search: str = "") -> pd.DataFrame:
    """The alerts to show, readable (no None, dates as text), open first then newest (pure)."""
    frame = alerts.copy()
    is_open = frame["acknowledged_at"].isna()
    if state == "Open":
        frame = frame[is_open]
    elif state == "Acknowledged":
        frame = frame[~is_open]
    if severities:
        frame = frame[frame["severity"].isin(severities)]
    if search.strip():
        frame = frame[frame["patient_key"].str.contains(search.strip(), case=False, regex=False)]
    frame = frame.assign(
        alert=frame["alert_type"].map(alert_name),
        status=["Open" if pd.isna(a) else "Acknowledged" for a in frame["acknowledged_at"]],
        values=(frame["values_basis"].fillna("proposed") if "values_basis" in frame.columns
                else ["proposed"] * len(frame)),
        raised=[format_cell(v, "datetime") for v in frame["created_at"]],
        acknowledged=[format_cell(v, "datetime") for v in frame["acknowledged_at"]],
        study_date=[format_cell(v, "date") for v in frame["study_date"]],
        acknowledged_by=[format_cell(v, "text") for v in frame["acknowledged_by"]],
        acknowledged_note=[(n if isinstance(n, str) and n.strip() else ("no note" if not pd.isna(a) else BLANK))
                           for n, a in zip(frame["acknowledged_note"], frame["acknowledged_at"], strict=True)],
    )
    return frame[list(_SHOWN)].reset_index(drop=True)


_NAMES = {"PPD": "Preliminary PD", "DISCORDANT_2D_3D": "2D/3D discordant", "GROWTH_PSP_WINDOW":
          "Growth in the pseudoprogression window"}


def alert_name(alert_type: str) -> str:
    """``ALERT_PD_CONFIRMED`` -> ``PD confirmed`` (RANO abbreviations kept upper case).

    >>> alert_name("ALERT_RAPID_GROWTH")
    'Rapid growth'
    """
    name = str(alert_type).removeprefix("ALERT_")
    if name in _NAMES:
        return _NAMES[name]
    words = name.split("_")
    keep = {"PD", "PSP", "RT", "QA", "QC", "ET", "SPD", "NE", "2D", "3D"}
    text = " ".join(w if w in keep else w.lower() for w in words)
    return text[:1].upper() + text[1:]


def render(ref: data.SnapshotRef) -> None:
    st.header("Alerts")
    alerts = data.alerts_overview(ref)
    if alerts.empty:
        st.info("No alerts have been raised.")
        return
    n_open = int(alerts["acknowledged_at"].isna().sum())
    n_patients = alerts["patient_key"].nunique()
    st.caption(f"{n_open} open, {len(alerts) - n_open} acknowledged, across {n_patients} "
               f"patient{'s' if n_patients != 1 else ''}. Acknowledge on a patient's Actions page. "
               "Click a row to open the patient.")
    c1, c2, c3 = st.columns([1, 2, 2])
    state = c1.radio("Show", STATES, index=2, key="al_state", horizontal=True)
    severities = c2.multiselect("Severity", sorted(alerts["severity"].unique()), key="al_severity")
    search = c3.text_input("Search pseudonymous key", key="al_search")
    rows = alert_rows(alerts, state=state, severities=severities, search=search)
    keys = rows["patient_key"].tolist()
    st.dataframe(rows, hide_index=True, width="stretch", key="al_table", selection_mode="single-row",
                 on_select=lambda: _open_selected(keys),
                 column_config={c: st.column_config.TextColumn(label, help=text or None,
                                                               width="large" if c == "reason" else None)
                                for c, (label, text) in _SHOWN.items()})


def _open_selected(keys: list[str]) -> None:
    chosen = st.session_state["al_table"].selection.rows
    if chosen and chosen[0] < len(keys):
        open_patient(keys[chosen[0]], "Patient timeline")
