"""The timeline figure and the worklist filters, without Streamlit."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from dashboard.timeline_figure import PSP_WINDOW_DAYS, RESPONSE_COLOURS, build_timeline_figure, forecast_row
from dashboard.worklist import filter_worklist

TIMELINE = pd.DataFrame({
    "scan_date": [date(2025, 1, 10), date(2025, 3, 20), date(2025, 5, 1)],
    "study_uid": ["a", "b", "c"],
    "et_ml": [1.0, 2.0, 1.5], "netc_ml": [0.1, 0.2, 0.2], "snfh_ml": [5.0, 6.0, 5.5], "rc_ml": [None] * 3,
    "tc_ml": [1.1, 2.2, 1.7], "spd_mm2": [100.0, 160.0, 120.0],
    "response": ["BASELINE", "PRELIM_PD", "SD"], "final_response": ["BASELINE", "PSEUDOPROGRESSION", "SD"],
    "psp_probability": [None, 0.43, None], "reason": ["r1", "r2", "r3"],
})
EVENTS = pd.DataFrame({
    "event_date": [date(2024, 11, 1), date(2024, 12, 13), date(2025, 1, 20), date(2025, 2, 1)],
    "event": ["RT_START", "RT_END", "CHEMO_CYCLE", "STEROID_DOSE"],
    "value": [None, None, "1", "4"],
})
GROWTH = pd.DataFrame({
    "label": ["SNFH", "ET"], "model": ["exponential", "exponential"], "evaluable": [True, True],
    "crossing_date": [date(2025, 9, 1), date(2025, 8, 1)],
    "crossing_low": [None, date(2025, 7, 1)], "crossing_high": [None, date(2025, 10, 1)],
})


def _shapes(fig, colour: str) -> list:  # noqa: ANN001
    return [s for s in fig.layout.shapes if s.fillcolor == colour]


def test_figure_has_labels_spd_bands_treatment_and_forecast() -> None:
    fig = build_timeline_figure(TIMELINE, EVENTS, growth=GROWTH,
                                nadir={"nadir_date": date(2025, 1, 10), "nadir_burden": 100.0, "mode": "2d"})
    names = [t.name for t in fig.data]
    assert {"ET (mL)", "NETC (mL)", "SNFH (mL)", "SPD (mm²)", "nadir (mm²)", "dexamethasone mg/day"} <= set(names)
    assert "RC (mL)" not in names, "an all-empty label is not drawn"
    spd = fig.data[names.index("SPD (mm²)")]
    assert spd.yaxis == "y2" and list(spd.y) == [100.0, 160.0, 120.0]
    band = _shapes(fig, RESPONSE_COLOURS["PSEUDOPROGRESSION"])  # the settled call colours the band
    assert len(band) == 1 and band[0].x0 == date(2025, 3, 20) and band[0].x1 == date(2025, 5, 1)
    assert not _shapes(fig, RESPONSE_COLOURS["PRELIM_PD"])
    psp_window = _shapes(fig, "#bcbddc")
    assert psp_window and psp_window[0].x0 == date(2024, 12, 13)
    assert psp_window[0].x1 == date(2024, 12, 13) + timedelta(days=PSP_WINDOW_DAYS)
    forecast = [s for s in fig.layout.shapes if s.type == "line" and s.line.dash == "dash"]
    assert [s.x0 for s in forecast] == [date(2025, 8, 1)], "ET exponential fit preferred"
    assert any("P(PsP) 43%" in a.text for a in fig.layout.annotations)


def test_forecast_row_skips_non_evaluable_fits() -> None:
    growth = GROWTH.assign(evaluable=[True, False])
    assert forecast_row(growth)["label"] == "SNFH"
    assert forecast_row(growth.assign(evaluable=[False, False])) is None


def test_empty_patient_still_draws() -> None:
    fig = build_timeline_figure(pd.DataFrame(), pd.DataFrame(columns=["event_date", "event", "value"]))
    assert len(fig.data) == 0


WORKLIST = pd.DataFrame({
    "patient_key": ["P-A", "P-B", "P-C"],
    "last_scan_date": [date(2025, 1, 1), date(2025, 3, 1), date(2025, 6, 1)],
    "response": ["PD", None, "SD"], "mgmt": ["methylated", "unknown", "unmethylated"],
    "model_version": ["0.1.0", None, "0.1.0, 0.2.0"],
})


def test_worklist_filters() -> None:
    keys = lambda f: list(f["patient_key"])  # noqa: E731
    assert keys(filter_worklist(WORKLIST, statuses=["not assessed", "PD"])) == ["P-A", "P-B"]
    assert keys(filter_worklist(WORKLIST, since=date(2025, 2, 1), until=date(2025, 5, 1))) == ["P-B"]
    assert keys(filter_worklist(WORKLIST, mgmt="unmethylated")) == ["P-C"]
    assert keys(filter_worklist(WORKLIST, model_version="0.2.0")) == ["P-C"]
    assert keys(filter_worklist(WORKLIST, search=" p-b ")) == ["P-B"]
    assert keys(filter_worklist(WORKLIST)) == ["P-A", "P-B", "P-C"]


def test_every_stored_response_category_has_its_own_band_colour() -> None:
    from engine.types import Response

    assert set(RESPONSE_COLOURS) == {r.value for r in Response}
    assert len(set(RESPONSE_COLOURS.values())) == len(RESPONSE_COLOURS)


def test_burden_axes_draw_no_negative_tick() -> None:
    """A course with SPD 0 everywhere (non-measurable disease) autoranges around zero: the volume
    and SPD axes are kept non-negative."""
    flat = TIMELINE.assign(spd_mm2=[0.0, 0.0, 0.0])
    fig = build_timeline_figure(flat, EVENTS, growth=None, nadir=None)
    assert fig.layout.yaxis.rangemode == "nonnegative"
    assert fig.layout.yaxis2.rangemode == "nonnegative"
