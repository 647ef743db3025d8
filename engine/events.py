"""Clinical events: the treatment timeline per patient, read from a CSV and turned into rule inputs.

CSV format (UTF-8, comma-separated, header required, one event per row)::

    patient_id,event_date,event,value

============  =========================================================================
column        meaning
============  =========================================================================
patient_id    the patient's pseudonymous key (as in the store's ``patient_key``)
event_date    ISO date ``YYYY-MM-DD``
event         one of the event types below (upper case)
value         depends on the event (below); empty where optional
============  =========================================================================

=====================  =============================================  ==========
event                  value                                          required
=====================  =============================================  ==========
SURGERY                GTR | STR | BIOPSY                             yes
RT_START               free text (e.g. ``60 Gy/30 fx``)               no
RT_END                 free text                                      no
CHEMO_START            free text (e.g. ``TMZ``)                       no
CHEMO_CYCLE            free text (e.g. cycle number)                  no
CHEMO_END              free text                                      no
STEROID_DOSE           dexamethasone mg/day, a number >= 0            yes
CLINICAL_STATUS        improved | stable | worse (worse = tumour-     yes
                       related decline, not medication/comorbidity)
MGMT                   methylated | unmethylated | unknown            yes
IDH                    wildtype | mutant | unknown                    yes
HISTOLOGY              recurrent_tumour | treatment_effect            yes
ANTIANGIOGENIC_START   free text (e.g. ``bevacizumab``)               no
=====================  =============================================  ==========

How the rules use them: RT end = the earliest RT_END (first course; with none, the engine says
RT end is unknown rather than guessing); surgery = the earliest SURGERY; MGMT / IDH = the latest
known value; at a scan, the steroid dose and clinical status are the latest on or before its date,
and a HISTOLOGY recurrent_tumour dated after the previous scan and on or before this one counts as
histological progression.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path

from engine.errors import AssessmentError
from engine.response.inputs import ClinicalStatus, Idh, Mgmt, PatientContext, Timepoint

HEADER = ("patient_id", "event_date", "event", "value")


class EventType(StrEnum):
    SURGERY = "SURGERY"
    RT_START = "RT_START"
    RT_END = "RT_END"
    CHEMO_START = "CHEMO_START"
    CHEMO_CYCLE = "CHEMO_CYCLE"
    CHEMO_END = "CHEMO_END"
    STEROID_DOSE = "STEROID_DOSE"
    CLINICAL_STATUS = "CLINICAL_STATUS"
    MGMT = "MGMT"
    IDH = "IDH"
    HISTOLOGY = "HISTOLOGY"
    ANTIANGIOGENIC_START = "ANTIANGIOGENIC_START"


_CHOICES: dict[EventType, tuple[str, ...]] = {
    EventType.SURGERY: ("GTR", "STR", "BIOPSY"),
    EventType.CLINICAL_STATUS: tuple(s.value for s in ClinicalStatus),
    EventType.MGMT: tuple(m.value for m in Mgmt),
    EventType.IDH: tuple(i.value for i in Idh),
    EventType.HISTOLOGY: ("recurrent_tumour", "treatment_effect"),
}


@dataclass(frozen=True, slots=True)
class ClinicalEvent:
    patient_id: str
    event_date: date
    event: EventType
    value: str = ""  # normalised: upper case for SURGERY, lower case for the other choices


@dataclass(frozen=True, slots=True)
class EventRowError:
    row: int  # 1-based data row; the header is line 1
    column: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row} (line {self.row + 1}), column '{self.column}': {self.message}"


def read_clinical_events(path: Path | str) -> tuple[tuple[ClinicalEvent, ...], tuple[EventRowError, ...]]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise AssessmentError(f"Cannot read the clinical-events file {path}", detail=str(exc)) from exc
    return parse_clinical_events(text, source=str(path))


def parse_clinical_events(text: str, *, source: str = "clinical events") -> tuple[
        tuple[ClinicalEvent, ...], tuple[EventRowError, ...]]:
    """Events of every valid row, and one error per bad row (the others are kept)."""
    reader = csv.reader(io.StringIO(text))
    header = tuple(h.strip() for h in next(reader, ()))
    if header != HEADER:
        raise AssessmentError(
            f"The clinical-events file {source} has the header {','.join(header) or '(none)'}",
            action=f"The first line must be exactly: {','.join(HEADER)}",
        )
    events, errors = [], []
    for number, cells in enumerate(reader, start=1):
        if not any(c.strip() for c in cells):
            continue
        try:
            events.append(_parse_row(cells))
        except _CellError as exc:
            errors.append(EventRowError(number, exc.column, str(exc)))
    return tuple(events), tuple(errors)


class _CellError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _parse_row(cells: list[str]) -> ClinicalEvent:
    if len(cells) != len(HEADER):
        raise _CellError("(row)", f"has {len(cells)} cells, expected {len(HEADER)}")
    patient_id, day, kind, value = (c.strip() for c in cells)
    if not patient_id:
        raise _CellError("patient_id", "is empty")
    try:
        event_date = date.fromisoformat(day)
    except ValueError as exc:
        raise _CellError("event_date", f"{day!r} is not a date YYYY-MM-DD") from exc
    try:
        event = EventType(kind.upper())
    except ValueError as exc:
        raise _CellError("event", f"{kind!r} is not one of {', '.join(e.value for e in EventType)}") from exc
    return ClinicalEvent(patient_id, event_date, event, _value(event, value))


def _value(event: EventType, value: str) -> str:
    if event is EventType.STEROID_DOSE:
        try:
            dose = float(value)
        except ValueError as exc:
            raise _CellError("value", f"STEROID_DOSE needs mg/day dexamethasone, got {value!r}") from exc
        if not 0 <= dose < float("inf"):
            raise _CellError("value", f"STEROID_DOSE must be >= 0 mg/day, got {value!r}")
        return f"{dose:g}"
    if event in _CHOICES:
        options = _CHOICES[event]
        normal = value.upper() if event is EventType.SURGERY else value.lower()
        if normal not in options:
            raise _CellError("value", f"{event.value} must be one of {'|'.join(options)}, got {value!r}")
        return normal
    return value


def patient_context(events: Iterable[ClinicalEvent], patient_key: str, *, high_psp_therapy: bool = False
                    ) -> PatientContext:
    """RT end, surgery, MGMT and IDH of one patient from their events (see the module docstring)."""
    mine = sorted((e for e in events if e.patient_id == patient_key), key=lambda e: e.event_date)
    rt_end = next((e.event_date for e in mine if e.event is EventType.RT_END), None)
    surgery = next((e.event_date for e in mine if e.event is EventType.SURGERY), None)
    mgmt = [Mgmt(e.value) for e in mine if e.event is EventType.MGMT and e.value != Mgmt.UNKNOWN]
    idh = [Idh(e.value) for e in mine if e.event is EventType.IDH and e.value != Idh.UNKNOWN]
    return PatientContext(
        patient_key=patient_key, rt_end_date=rt_end, surgery_date=surgery,
        mgmt=mgmt[-1] if mgmt else Mgmt.UNKNOWN, idh=idh[-1] if idh else Idh.UNKNOWN,
        high_psp_therapy=high_psp_therapy,
    )


def with_clinical_values(timepoint: Timepoint, events: Iterable[ClinicalEvent], patient_key: str, *,
                         previous_scan_date: date | None = None) -> Timepoint:
    """The timepoint with steroid dose, clinical status and histology filled from the events
    (values already set on the timepoint win)."""
    mine = sorted((e for e in events if e.patient_id == patient_key and e.event_date <= timepoint.scan_date),
                  key=lambda e: e.event_date)
    doses = [float(e.value) for e in mine if e.event is EventType.STEROID_DOSE]
    status = [ClinicalStatus(e.value) for e in mine if e.event is EventType.CLINICAL_STATUS]
    histology = any(e.event is EventType.HISTOLOGY and e.value == "recurrent_tumour"
                    and (previous_scan_date is None or e.event_date > previous_scan_date) for e in mine)
    return dataclasses.replace(
        timepoint,
        steroid_dose_mg=timepoint.steroid_dose_mg if timepoint.steroid_dose_mg is not None
        else (doses[-1] if doses else None),
        clinical_status=timepoint.clinical_status or (status[-1] if status else None),
        histology_recurrent=timepoint.histology_recurrent or histology,
    )
