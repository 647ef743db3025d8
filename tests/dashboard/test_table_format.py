"""Readable tables (dashboard.table_format) and the worklist / alerts display frames, without Streamlit."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from dashboard.alerts_page import alert_name, alert_rows
from dashboard.table_format import BLANK, Column, format_cell, readable


@pytest.mark.parametrize(("value", "kind", "text"), [
    (1840.04321, "{:,.1f}", "1,840.0"),
    (28.349999, "{:,.0f}", "28"),
    (0.4333, "percent", "43%"),
    (None, "percent", BLANK),
    (float("nan"), "{:,.1f}", BLANK),
    (date(2025, 3, 20), "date", "2025-03-20"),
    (pd.Timestamp("2025-06-01 12:00:31"), "datetime", "2025-06-01 12:00"),
    (pd.NaT, "date", BLANK),
    (True, "bool", "yes"),
    ("", "text", BLANK),
    ("None of the lesions is measurable", "text", "None of the lesions is measurable"),
])
def test_format_cell(value: object, kind: str, text: str) -> None:
    assert format_cell(value, kind) == text


def test_readable_keeps_the_store_names_drops_the_rest_and_never_says_none() -> None:
    frame = pd.DataFrame({"spd_mm2": [1840.0432, None], "params_json": ["{}", "{}"], "reason": ["long " * 40, None]})
    shown = readable(frame, {"reason": Column("Reason"), "spd_mm2": Column("SPD (mm²)", "{:,.1f}")})
    assert list(shown.columns) == ["reason", "spd_mm2"]
    assert list(shown["spd_mm2"]) == ["1,840.0", BLANK]
    assert shown.loc[0, "reason"] == ("long " * 40).strip(), "full text, not truncated"
    assert "None" not in shown.to_numpy().ravel().tolist()


def test_alert_rows_open_and_acknowledged_with_who_and_why() -> None:
    alerts = pd.DataFrame({
        "alert_id": [2, 1], "patient_key": ["P-1", "P-2"], "study_date": [date(2025, 3, 1), None],
        "alert_type": ["ALERT_PD_CONFIRMED", "QA_STUDY_QUARANTINED"], "severity": ["CRITICAL", "WARNING"],
        "reason": ["r2", "r1"], "created_at": [datetime(2025, 3, 2, 8, 0), datetime(2025, 3, 1, 8, 0)],
        "acknowledged_at": [None, datetime(2025, 3, 3, 9, 30)], "acknowledged_by": [None, "dr.a"],
        "acknowledged_note": [None, ""]})
    rows = alert_rows(alerts)
    assert rows.loc[0, ["status", "acknowledged_by", "acknowledged_note"]].tolist() == ["Open", BLANK, BLANK]
    assert rows.loc[1, ["status", "acknowledged_by", "acknowledged", "acknowledged_note", "study_date"]].tolist() == [
        "Acknowledged", "dr.a", "2025-03-03 09:30", "no note", BLANK]
    assert list(alert_rows(alerts, state="Open")["patient_key"]) == ["P-1"]
    assert list(alert_rows(alerts, severities=["WARNING"])["alert"]) == ["QA study quarantined"]
    assert alert_name("ALERT_PPD") == "Preliminary PD"
