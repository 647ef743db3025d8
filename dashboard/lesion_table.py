"""The per-lesion table of a timepoint: d1 × d2, product, volume, measurable, role, tracked identity,
the reader's correction where one is in force, and the new lesion a reader recorded (typed, or drawn
on the image: a lesion the model missed) as its own row (pure frame building + one Streamlit call)."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard.table_format import Column, show_table

COLUMNS: dict[str, Column] = {
    "lesion": Column("Lesion"),
    "identity": Column("Tracked identity"),
    "diameters": Column("d1 × d2 (mm)"),
    "product_mm2": Column("Product (mm²)", "{:,.0f}"),
    "volume_ml": Column("ET volume (mL)", "{:,.2f}"),
    "measurable": Column("Measurable", "bool"),
    "role": Column("Role"),
    "slice": Column("Measured on axial slice"),
    "reader": Column("Reader's d1 × d2 (mm)"),
}


#: the lesion index a reader-entered new lesion is drawn under (the pipeline's lesions count from 1)
READER_LESION = 0
READER_ROLE = "new (reader-entered)"


def reader_new_lesion(history: pd.DataFrame, study_uid: str) -> dict | None:
    """The new lesion a reader recorded on a scan, in force (the latest NEW_LESION entry, present),
    as a lesion row: ``lesion_index`` :data:`READER_LESION`, d1, d2, the clicked ends (None when
    typed) and who entered it; None when no reader recorded one (pure)."""
    if history.empty:
        return None
    rows = history[(history["study_uid"] == study_uid) & (history["value_kind"] == "NEW_LESION")]
    if rows.empty:
        return None
    latest = rows.iloc[0]  # newest first
    value = json.loads(latest["value_json"])
    if not value.get("present"):
        return None
    ends = {c: (latest[c] if c in latest.index and pd.notna(latest[c]) else None)
            for c in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")}
    return {"lesion_index": READER_LESION, "d1_mm": value.get("d1_mm"), "d2_mm": value.get("d2_mm"),
            "entered_by": latest["entered_by"], "drawn": ends["d1_p0"] is not None, **ends}


def role(row: pd.Series) -> str:
    """target / non-target / new (a new lesion is never a target; RANO 2.0 8.3)."""
    if bool(row.get("is_new")):
        return "new"
    return "target" if bool(row.get("is_target")) else "non-target"


def reader_diameters(history: pd.DataFrame, study_uid: str) -> dict[int, str]:
    """The reader's diameters in force per lesion of a study ("d1 × d2"), from the history (newest first)."""
    out: dict[int, str] = {}
    if history.empty:
        return out
    rows = history[(history["study_uid"] == study_uid) & (history["value_kind"] == "DIAMETERS")]
    for r in rows.itertuples():  # newest first: the first seen is in force
        value = json.loads(r.value_json)
        out.setdefault(int(r.lesion_index), f"{value['d1_mm']:.1f} × {value['d2_mm']:.1f}")
    return out


def lesion_frame(lesions: pd.DataFrame, history: pd.DataFrame, study_uid: str) -> pd.DataFrame:
    """The table's rows for one study (pure)."""
    mine = lesions[lesions["study_uid"] == study_uid] if not lesions.empty else lesions
    reader = _reader_row(reader_new_lesion(history, study_uid))
    if mine.empty:
        return pd.DataFrame([reader] if reader else [], columns=list(COLUMNS))
    fixes = reader_diameters(history, study_uid)
    frame = pd.DataFrame({
        "lesion": [f"#{int(i)}" for i in mine["lesion_index"]],
        "identity": [f"L{int(t)}" if pd.notna(t) else "untracked" for t in mine["track_id"]],
        "diameters": [f"{a:.1f} × {b:.1f}" for a, b in zip(mine["d1_mm"], mine["d2_mm"], strict=True)],
        "product_mm2": list(mine["product_mm2"]),
        "volume_ml": list(mine["volume_ml"]),
        "measurable": list(mine["measurable"]),
        "role": [role(r) for _, r in mine.iterrows()],
        "slice": [str(int(s)) if pd.notna(s) else "—" for s in mine["slice_index"]],
        "reader": [fixes.get(int(i), "—") for i in mine["lesion_index"]],
    })
    return pd.concat([frame, pd.DataFrame([reader])], ignore_index=True) if reader else frame


def _reader_row(lesion: dict | None) -> dict | None:
    """The table row of a reader-entered new lesion (its size where the reader gave one)."""
    if lesion is None:
        return None
    d1, d2 = lesion["d1_mm"], lesion["d2_mm"]
    sized = d1 is not None and d2 is not None
    return {"lesion": "reader", "identity": f"reader-entered ({lesion['entered_by']})",
            "diameters": f"{d1:.1f} × {d2:.1f}" if sized else "—", "product_mm2": d1 * d2 if sized else None,
            "volume_ml": None, "measurable": True, "role": READER_ROLE,
            "slice": "drawn on the image" if lesion["drawn"] else "typed", "reader": "—"}


def show(lesions: pd.DataFrame, history: pd.DataFrame, study_uid: str, caption: str) -> None:
    frame = lesion_frame(lesions, history, study_uid)
    st.markdown(f"**Lesions · {caption}**")
    if frame.empty:
        st.caption("No enhancing lesion was measured on this scan.")
        return
    show_table(frame, COLUMNS)
    st.caption("Tracked identity: L<n> is lesion n of the baseline, followed across timepoints. Slice numbers "
               "count the measured grid's axial slices (baseline space for follow-ups). Cyan: d1, violet: d2; "
               "a new lesion a reader drew: deep pink d1, light pink d2.")
