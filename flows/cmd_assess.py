"""``gliowatch assess TABLE.csv``: RANO response from a table of measurements, without images.

Input: one row per timepoint with exactly these columns (rows of several patients may be mixed
and unsorted)::

    patient_id, scan_date, rt_end_date, et_ml, netc_ml, snfh_ml, spd_mm2,
    new_measurable_lesion, nonmeasurable_progression, steroid_dose_mg, clinical_status, mgmt

Dates are ISO ``YYYY-MM-DD``; booleans ``0``/``1``; ``clinical_status`` is improved|stable|worse
(``worse`` = tumour-related decline); ``mgmt`` is methylated|unmethylated|unknown; an empty cell
is unknown. ``rt_end_date`` and ``mgmt`` describe the patient: rows of one patient must not
disagree (empty cells are fine).

Output (stdout or ``--out``), one row per input row, in input order::

    patient_id, scan_date, response, final_response, pd_date, psp_probability, reason

A bad row is reported on stderr with its row number and column, written as NE with the error as
its reason, and left out of its patient's sequence; the other rows are still assessed. The exit
status is 1 when any row was bad, else 0.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from engine.criteria import Criteria, Mode, Profile, load_criteria
from engine.errors import AssessmentError
from engine.response import ClinicalStatus, Mgmt, PatientContext, Timepoint, assess_patient
from engine.risk import psp_at_preliminary_pds
from engine.settings import Settings
from engine.types import Response

INPUT_COLUMNS = (
    "patient_id", "scan_date", "rt_end_date", "et_ml", "netc_ml", "snfh_ml", "spd_mm2",
    "new_measurable_lesion", "nonmeasurable_progression", "steroid_dose_mg", "clinical_status", "mgmt",
)
OUTPUT_COLUMNS = ("patient_id", "scan_date", "response", "final_response", "pd_date", "psp_probability", "reason")


class RowError(ValueError):
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


@dataclass(slots=True)
class _Row:
    number: int  # 1-based data row (the header is line 1, row 1 is line 2)
    raw: dict[str, str]
    timepoint: Timepoint | None = None
    rt_end: date | None = None
    mgmt: Mgmt = Mgmt.UNKNOWN
    error: str = ""
    out: dict[str, str] = field(default_factory=dict)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("assess", help="RANO response from a table of measurements (no images)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table", type=Path, help="CSV file, one row per timepoint")
    p.add_argument("--profile", choices=[x.value for x in Profile], help="criteria (default: settings, rano2)")
    p.add_argument("--mode", choices=[x.value for x in Mode], help="2d (SPD) or 3d (ET volume)")
    p.add_argument("--format", choices=("csv", "json"), default="csv", dest="output_format")
    p.add_argument("--out", type=Path, help="write here instead of stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    criteria = load_criteria(args.profile or settings.assessment.profile)
    mode = Mode(args.mode or settings.assessment.mode)
    criteria.pd_threshold(mode)  # RANO 2010 has no 3D thresholds: fail before reading
    rows = read_rows(args.table)
    assess_rows(rows, criteria=criteria, mode=mode)
    for row in rows:
        if row.error:
            print(f"gliowatch assess: {args.table}: {row.error}", file=sys.stderr)
    text = format_rows(rows, args.output_format)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    bad = sum(1 for row in rows if row.error)
    if bad:
        print(f"gliowatch assess: {bad} of {len(rows)} rows had errors and were not assessed", file=sys.stderr)
    return 1 if bad else 0


def read_rows(path: Path) -> list[_Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise AssessmentError(f"Cannot read the table {path}", action="Check the path.", detail=str(exc)) from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in INPUT_COLUMNS if c not in header]
    extra = [c for c in header if c not in INPUT_COLUMNS]
    if missing or extra:
        raise AssessmentError(
            f"The table {path} does not have the expected columns"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else ""),
            action=f"Use exactly these columns: {', '.join(INPUT_COLUMNS)}.",
        )
    reader.fieldnames = header
    rows = []
    for number, raw in enumerate(reader, start=1):
        row = _Row(number=number, raw={k: (v or "").strip() for k, v in raw.items() if k is not None})
        try:
            if None in raw:
                raise RowError("(extra cells)", f"has {len(raw[None])} more cells than the header")
            row.timepoint, row.rt_end, row.mgmt = parse_row(row.raw)
        except RowError as exc:
            row.error = f"row {number} (line {number + 1}), column '{exc.column}': {exc}"
        rows.append(row)
    return rows


def parse_row(raw: dict[str, str]) -> tuple[Timepoint, date | None, Mgmt]:
    if not raw.get("patient_id"):
        raise RowError("patient_id", "is empty")
    scan_date = _date(raw, "scan_date", required=True)
    timepoint = Timepoint(
        scan_date=scan_date,  # type: ignore[arg-type]
        study_uid=f"{raw['patient_id']}:{raw['scan_date']}",
        spd_mm2=_number(raw, "spd_mm2"), et_ml=_number(raw, "et_ml"), netc_ml=_number(raw, "netc_ml"),
        snfh_ml=_number(raw, "snfh_ml"), new_measurable_lesion=_bool(raw, "new_measurable_lesion"),
        nonmeasurable_progression=_bool(raw, "nonmeasurable_progression"),
        steroid_dose_mg=_number(raw, "steroid_dose_mg"),
        clinical_status=_choice(raw, "clinical_status", ClinicalStatus),
    )
    return timepoint, _date(raw, "rt_end_date"), _choice(raw, "mgmt", Mgmt) or Mgmt.UNKNOWN


def assess_rows(rows: list[_Row], *, criteria: Criteria, mode: Mode) -> None:
    """Fill ``row.out`` for every row; rows with an error become NE with the error as reason."""
    by_patient: dict[str, list[_Row]] = defaultdict(list)
    for row in rows:
        if not row.error:
            by_patient[row.raw["patient_id"]].append(row)
    for patient_id, patient_rows in by_patient.items():
        _check_patient(patient_id, patient_rows)
        good = [r for r in patient_rows if not r.error]
        if good:
            _assess_patient(patient_id, good, criteria=criteria, mode=mode)
    for row in rows:
        if row.error:
            row.out = {"patient_id": row.raw.get("patient_id", ""), "scan_date": row.raw.get("scan_date", ""),
                       "response": Response.NE.value, "final_response": Response.NE.value, "pd_date": "",
                       "psp_probability": "", "reason": f"Not assessed: {row.error}."}


def _check_patient(patient_id: str, rows: list[_Row]) -> None:
    seen: dict[date, int] = {}
    for row in rows:
        assert row.timepoint is not None
        first = seen.setdefault(row.timepoint.scan_date, row.number)
        if first != row.number:
            row.error = (f"row {row.number} (line {row.number + 1}), column 'scan_date': patient {patient_id} "
                         f"already has a scan on {row.timepoint.scan_date.isoformat()} (row {first})")
    for column, values in (("rt_end_date", {r.rt_end for r in rows if r.rt_end}),
                           ("mgmt", {r.mgmt for r in rows if r.mgmt is not Mgmt.UNKNOWN})):
        if len(values) > 1:
            shown = ", ".join(sorted(str(v) for v in values))
            for row in rows:
                row.error = row.error or (f"row {row.number} (line {row.number + 1}), column '{column}': rows of "
                                          f"patient {patient_id} disagree ({shown}), so none of them is assessed")


def _assess_patient(patient_id: str, rows: list[_Row], *, criteria: Criteria, mode: Mode) -> None:
    rt_end = next((r.rt_end for r in rows if r.rt_end), None)
    mgmt = next((r.mgmt for r in rows if r.mgmt is not Mgmt.UNKNOWN), Mgmt.UNKNOWN)
    context = PatientContext(patient_key=patient_id, rt_end_date=rt_end, mgmt=mgmt)
    timepoints = [r.timepoint for r in rows]
    calls = assess_patient(timepoints, context, criteria=criteria, mode=mode)  # type: ignore[arg-type]
    risks = psp_at_preliminary_pds(calls, timepoints, context=context, criteria=criteria)  # type: ignore[arg-type]
    for row, call in zip(rows, calls, strict=True):
        probability, reason = "", call.reason
        estimate = risks.get(call.study_uid)
        if estimate is not None:
            probability, reason = f"{estimate.probability:.2f}", f"{reason} {estimate.text}."
        if call.final_reason and call.final_category is not call.category:
            reason = f"{reason} Later: {call.final_reason}"
        row.out = {"patient_id": patient_id, "scan_date": call.scan_date.isoformat(),
                   "response": call.category.value, "final_response": call.final_category.value,
                   "pd_date": call.pd_date.isoformat() if call.pd_date else "",
                   "psp_probability": probability, "reason": reason}


def format_rows(rows: list[_Row], output_format: str) -> str:
    records = [{c: row.out[c] for c in OUTPUT_COLUMNS} for row in rows]
    if output_format == "json":
        for record in records:
            p = record["psp_probability"]
            record["psp_probability"] = float(p) if p else None  # type: ignore[assignment]
            record["pd_date"] = record["pd_date"] or None  # type: ignore[assignment]
        return json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OUTPUT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def _date(raw: dict[str, str], column: str, *, required: bool = False) -> date | None:
    text = raw.get(column, "")
    if not text:
        if required:
            raise RowError(column, "is empty (a date YYYY-MM-DD is required)")
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise RowError(column, f"{text!r} is not a date YYYY-MM-DD") from exc


def _number(raw: dict[str, str], column: str) -> float | None:
    text = raw.get(column, "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise RowError(column, f"{text!r} is not a number") from exc
    if not value >= 0 or value == float("inf"):
        raise RowError(column, f"{text!r} must be a finite number >= 0")
    return value


def _bool(raw: dict[str, str], column: str) -> bool | None:
    text = raw.get(column, "")
    if not text:
        return None
    if text not in {"0", "1"}:
        raise RowError(column, f"{text!r} must be 0, 1 or empty")
    return text == "1"


def _choice(raw: dict[str, str], column: str, enum: type) -> object | None:
    text = raw.get(column, "").lower()
    if not text:
        return None
    try:
        return enum(text)
    except ValueError as exc:
        options = "|".join(m.value for m in enum)
        raise RowError(column, f"{raw[column]!r} must be one of {options} or empty") from exc
