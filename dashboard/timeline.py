"""Patient timeline page: the figure, each call with its reason, P(PsP) with its inputs, growth."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.timeline_figure import build_timeline_figure

#: timeline columns shown in the table of calls, when the snapshot has them.
CALL_COLUMNS: tuple[str, ...] = ("scan_date", "response", "final_response", "pd_date", "spd_mm2",
                                 "psp_probability", "reason", "criteria")


def render(ref: data.SnapshotRef, patient_key: str) -> None:
    st.header(f"Patient {patient_key}")
    bundle = data.patient_bundle(ref, patient_key)
    timeline, events = bundle["timeline"], bundle["events"]
    if bundle["images"].empty:
        st.warning(f"No studies for patient key {patient_key!r} in the snapshot.")
        return
    _alerts(bundle["alerts"])
    if timeline.empty:
        st.info("No assessment yet for this patient (the timeline fills in once studies are assessed).")
    fig = build_timeline_figure(timeline, events, growth=bundle["growth"], nadir=bundle["nadir"])
    st.plotly_chart(fig, width="stretch", key="timeline_chart")
    if not timeline.empty:
        st.subheader("Calls and their reasons")
        shown = [c for c in CALL_COLUMNS if c in timeline.columns]
        st.dataframe(timeline[shown], hide_index=True, width="stretch")
    _psp(bundle["psp_risk"])
    _growth(bundle["growth"])
    _decisions(bundle["decisions"])


def _alerts(alerts: pd.DataFrame) -> None:
    open_alerts = alerts[alerts["acknowledged_at"].isna()] if not alerts.empty else alerts
    for row in open_alerts.itertuples():
        st.error(f"**{row.alert_type}** ({row.severity}, {row.study_date}): {row.reason}")


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
    st.dataframe(growth.drop(columns=[c for c in ("patient_key",) if c in growth.columns]),
                 hide_index=True, width="stretch")


def _decisions(decisions: pd.DataFrame) -> None:
    if decisions.empty:
        return
    st.subheader("Tumour-board decisions")
    cols = [c for c in ("decided_at", "decision", "note", "decided_by") if c in decisions.columns]
    st.dataframe(decisions[cols].sort_values(cols[0], ascending=False), hide_index=True, width="stretch")
