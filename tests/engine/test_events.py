"""Clinical-events CSV: parsing with row/column errors, and what the rules read from it."""

from __future__ import annotations

from datetime import date

import pytest

from engine.errors import AssessmentError
from engine.events import (
    ClinicalEvent,
    EventType,
    parse_clinical_events,
    patient_context,
    read_clinical_events,
    with_clinical_values,
)
from engine.response import ClinicalStatus, Idh, Mgmt, Timepoint

CSV = """patient_id,event_date,event,value
P-1,2024-10-01,SURGERY,gtr
P-1,2024-10-20,RT_START,60 Gy/30 fx
P-1,2024-12-01,RT_END,
P-1,2024-10-20,CHEMO_START,TMZ
P-1,2025-01-05,STEROID_DOSE,4
P-1,2025-01-05,CLINICAL_STATUS,Stable
P-1,2024-10-01,MGMT,methylated
P-1,2024-10-01,IDH,wildtype
P-1,2025-03-01,STEROID_DOSE,8
P-1,2025-03-10,HISTOLOGY,recurrent_tumour
P-2,2025-01-01,MGMT,maybe
P-2,2025-13-01,RT_END,
P-2,2025-01-01,STEROIDS,4
P-2,2025-01-01,STEROID_DOSE,-1
P-2,2025-01-01,RT_END
"""


def test_valid_rows_are_kept_and_bad_rows_reported_with_row_and_column() -> None:
    events, errors = parse_clinical_events(CSV)
    assert len(events) == 10
    assert [(e.row, e.column) for e in errors] == [(11, "value"), (12, "event_date"), (13, "event"),
                                                   (14, "value"), (15, "(row)")]
    assert str(errors[1]) == "row 12 (line 13), column 'event_date': '2025-13-01' is not a date YYYY-MM-DD"
    assert ClinicalEvent("P-1", date(2024, 10, 1), EventType.SURGERY, "GTR") in events


def test_wrong_header_is_refused() -> None:
    with pytest.raises(AssessmentError, match="header"):
        parse_clinical_events("patient,date,event,value\n")


def test_read_from_a_file(tmp_path) -> None:
    path = tmp_path / "clinical_events.csv"
    path.write_text(CSV, encoding="utf-8")
    events, errors = read_clinical_events(path)
    assert len(events) == 10 and len(errors) == 5


def test_patient_context_from_events() -> None:
    events, _ = parse_clinical_events(CSV)
    context = patient_context(events, "P-1")
    assert context.rt_end_date == date(2024, 12, 1) and context.surgery_date == date(2024, 10, 1)
    assert context.mgmt is Mgmt.METHYLATED and context.idh is Idh.WILDTYPE
    assert patient_context(events, "P-9").rt_end_date is None  # unknown, not guessed


def test_timepoint_values_are_the_latest_on_or_before_the_scan() -> None:
    events, _ = parse_clinical_events(CSV)
    first = with_clinical_values(Timepoint(scan_date=date(2025, 2, 1)), events, "P-1")
    assert first.steroid_dose_mg == 4.0 and first.clinical_status is ClinicalStatus.STABLE
    assert not first.histology_recurrent
    later = with_clinical_values(Timepoint(scan_date=date(2025, 3, 15)), events, "P-1",
                                 previous_scan_date=date(2025, 2, 1))
    assert later.steroid_dose_mg == 8.0 and later.histology_recurrent
    kept = with_clinical_values(Timepoint(scan_date=date(2025, 3, 15), steroid_dose_mg=1.0), events, "P-1")
    assert kept.steroid_dose_mg == 1.0
