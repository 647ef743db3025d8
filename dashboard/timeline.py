"""Patient timeline page: the figure, each call with its reason, P(PsP) with its inputs, growth."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import data, lesion_table
from dashboard.table_format import Column, show_table
from dashboard.timeline_figure import build_timeline_figure

#: timeline columns shown in the table of calls, when the snapshot has them.
CALL_COLUMNS: dict[str, Column] = {
    "scan_date": Column("Scan date", "date"), "response": Column("Call on the day"),
    "final_response": Column("Final call"), "pd_date": Column("PD dated from", "date"),
    "et_ml": Column("ET (mL)", "{:,.1f}"), "spd_mm2": Column("SPD (mm²)", "{:,.0f}"),
    "psp_probability": Column("P(PsP)", "percent"), "reason": Column("Reason", wide=True),
    "final_reason": Column("Final reason", wide=True), "criteria": Column("Criteria"),
}
GROWTH_COLUMNS: dict[str, Column] = {
    "label": Column("Region"), "model": Column("Model"), "evaluable": Column("Evaluable", "bool"),
    "reason": Column("Reason", wide=True), "n_points": Column("Points", "{:.0f}"),
    "nadir_date": Column("Nadir date", "date"), "nadir_ml": Column("Nadir (mL)", "{:,.1f}"),
    "sgr_per_day": Column("Growth rate (%/day)", "{:.2%}"), "vdt_days": Column("Doubling time (days)", "{:,.0f}"),
    "threshold_ml": Column("Threshold (mL)", "{:,.1f}"), "crossing_date": Column("Crossing", "date"),
    "crossing_low": Column("Crossing, earliest", "date"), "crossing_high": Column("Crossing, latest", "date"),
    "interval_method": Column("Interval"), "criteria": Column("Criteria"),
}
DECISION_COLUMNS: dict[str, Column] = {
    "decided_at": Column("Decided (UTC)", "datetime"), "decision": Column("Decision"),
    "note": Column("Note", wide=True), "decided_by": Column("By"),
}


def render(ref: data.SnapshotRef, patient_key: str) -> None:
    st.header(f"Patient {patient_key}")
    bundle = data.patient_bundle(ref, patient_key)
    timeline, events = bundle["timeline"], bundle["events"]
    if bundle["images"].empty:
        st.warning(f"No studies for patient key {patient_key!r} in the snapshot.")
        return
    _alerts(bundle["alerts"])
    _review(bundle.get("review"))
    if timeline.empty:
        st.info("No assessment yet for this patient (the timeline fills in once studies are assessed).")
    fig = build_timeline_figure(timeline, events, growth=bundle["growth"], nadir=bundle["nadir"])
    st.plotly_chart(fig, width="stretch", key="timeline_chart")
    if not timeline.empty:
        st.subheader("Calls and their reasons")
        show_table(timeline, CALL_COLUMNS)
    _reader_new_lesions(bundle.get("reader"), bundle["images"])
    _psp(bundle["psp_risk"])
    _growth(bundle["growth"])
    _decisions(bundle["decisions"])


ACKNOWLEDGED_COLUMNS: dict[str, Column] = {
    "alert_type": Column("Alert"), "severity": Column("Severity"), "study_date": Column("Scan date", "date"),
    "reason": Column("Reason", wide=True), "acknowledged_at": Column("Acknowledged (UTC)", "datetime"),
    "acknowledged_by": Column("By"), "acknowledged_note": Column("Why (note)", wide=True),
}


def _alerts(alerts: pd.DataFrame) -> None:
    if alerts.empty:
        return
    is_open = alerts["acknowledged_at"].isna()
    for row in alerts[is_open].itertuples():
        basis = getattr(row, "values_basis", None) or "proposed"
        st.error(f"**{row.alert_type}** ({row.severity}, {row.study_date}): {row.reason} "
                 f"· rests on {basis} values")
    if (~is_open).any():
        with st.expander(f"Acknowledged alerts ({int((~is_open).sum())})"):
            show_table(alerts[~is_open], ACKNOWLEDGED_COLUMNS)


def _review(review: pd.DataFrame | None) -> None:
    """Scans that need a reader first, with the reason; confirming in image review clears them."""
    if review is None or review.empty:
        return
    lines = "\n".join(f"- {pd.Timestamp(r.study_date):%Y-%m-%d}: {r.reason}" for r in review.itertuples())
    st.warning(f"**Review queue** — scans that need a reader first (accept or reject the segmentation in "
               f"Image review to clear them):\n{lines}")


def reader_new_lesion_lines(history: pd.DataFrame | None, studies: pd.DataFrame) -> list[str]:
    """One line per scan with a reader-entered new lesion in force, oldest scan first (pure)."""
    if history is None or history.empty or studies.empty:
        return []
    out = []
    for row in studies.sort_values("study_date").itertuples():
        lesion = lesion_table.reader_new_lesion(history, row.study_uid)
        if lesion is None:
            continue
        size = (f"{lesion['d1_mm']:.1f} × {lesion['d2_mm']:.1f} mm" if lesion["d1_mm"] is not None
                and lesion["d2_mm"] is not None else "size not given")
        how = "drawn on the T1c slice" if lesion["drawn"] else "typed"
        out.append(f"{pd.Timestamp(row.study_date):%Y-%m-%d}: reader-entered new lesion, {size} "
                   f"({how} by {lesion['entered_by']}); the call counts it as a new measurable lesion")
    return out


def _reader_new_lesions(history: pd.DataFrame | None, studies: pd.DataFrame) -> None:
    lines = reader_new_lesion_lines(history, studies)
    if lines:
        st.markdown("**Reader-entered new lesions**\n" + "\n".join(f"- {line}" for line in lines))


def _psp(psp: pd.DataFrame) -> None:
    st.subheader("Pseudoprogression probability")
    if psp.empty:
        st.caption("No preliminary PD, so no P(PsP) was computed.")
        return
    for row in psp.sort_values("scan_date").to_dict("records"):
        head = (f"{row['scan_date']}: P(PsP) = {row['probability']:.0%} "
                f"(band {row['low']:.0%}–{row['high']:.0%})")
        with st.expander(head, expanded=True):
            st.caption(f"{row.get('model', '')} · {row.get('criteria', '')}")
            st.markdown(f"Base probability {row['base_probability']:.0%}, combined odds multiplier "
                        f"×{row['combined_multiplier']:.2f} (clamped).")
            c1, c2 = st.columns(2)
            c1.markdown("**Inputs**")
            c1.json(_parse(row.get("inputs_json")))
            c2.markdown("**Multipliers**")
            c2.table(pd.DataFrame(_parse(row.get("multipliers_json")) or [],
                                  columns=["evidence", "× odds"]))


def _parse(text: object) -> object:
    try:
        return json.loads(str(text)) if text else {}
    except ValueError:
        return {"unparsed": str(text)}


def _growth(growth: pd.DataFrame) -> None:
    st.subheader("Growth")
    if growth.empty:
        st.caption("No growth fit (fewer timepoints since the nadir than a fit needs).")
        return
    show_table(growth, GROWTH_COLUMNS)


def _decisions(decisions: pd.DataFrame) -> None:
    if decisions.empty:
        return
    st.subheader("Tumour-board decisions")
    show_table(decisions.sort_values("decided_at", ascending=False), DECISION_COLUMNS)
