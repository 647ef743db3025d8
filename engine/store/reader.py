"""Every SQL statement on the reader's values (schema in ``schema_reader``): it stores and loads,
``engine.reader_values`` decides what they mean."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from engine.reader_values import LesionRow, ReaderEntry, ReaderInputs, ReaderValueKind

from engine.store.db import Store
from engine.store.schema_reader import END_COLUMNS

Con = duckdb.DuckDBPyConnection


def read_entries(con: Con, patient_key: str) -> tuple[ReaderEntry, ...]:
    rows = con.execute(
        """SELECT study_uid, value_kind, value_json, entered_by, entered_at, lesion_index FROM reader_values
           WHERE patient_key = ? ORDER BY entered_at, reader_value_id""", [patient_key]).fetchall()
    return tuple(ReaderEntry(r[0], ReaderValueKind(r[1]), json.loads(r[2]), r[3], r[4], r[5]) for r in rows)


def read_reader_inputs(con: Con, patient_key: str) -> ReaderInputs:
    """The patient's reader entries, the lesions of its current measurements and its baseline study."""
    lesions = con.execute(
        """SELECT l.study_uid, l.lesion_index, l.track_id, l.d1_mm, l.d2_mm, l.measurable, l.is_target, l.is_new
           FROM lesions l JOIN measurements m USING (measurement_id)
           WHERE m.patient_key = ? AND NOT m.superseded ORDER BY l.study_uid, l.lesion_index""",
        [patient_key]).fetchall()
    baseline = con.execute(
        """SELECT r.reference_study_uid FROM measurements m
           JOIN registrations r ON CAST(r.registration_id AS VARCHAR) = m.registration_id
           WHERE m.patient_key = ? AND NOT m.superseded AND r.reference_study_uid <> m.study_uid
           LIMIT 1""", [patient_key]).fetchall()
    return ReaderInputs(entries=read_entries(con, patient_key),
                        lesions=tuple(LesionRow(*r) for r in lesions),
                        baseline_uid=baseline[0][0] if baseline else None)


def automatic_lesion(con: Con, study_uid: str, lesion_index: int) -> dict[str, Any] | None:
    """The current measurement's lesion ``lesion_index`` of a study (d1, d2, track), or None."""
    rows = con.execute(
        """SELECT l.d1_mm, l.d2_mm, l.track_id, l.measurable FROM lesions l JOIN measurements m USING (measurement_id)
           WHERE m.study_uid = ? AND NOT m.superseded AND l.lesion_index = ?""", [study_uid, lesion_index]).fetchall()
    if not rows:
        return None
    d1, d2, track, measurable = rows[0]
    return {"d1_mm": round(d1, 1), "d2_mm": round(d2, 1), "track_id": track, "measurable": measurable}


def insert_entry(con: Con, *, patient_key: str, study_uid: str, kind: ReaderValueKind, lesion_index: int | None,
                 value: dict[str, Any], before: dict[str, Any] | None, note: str, user: str, at: datetime,
                 request_id: str, ends: Mapping[str, str] | None = None) -> None:
    """One reader entry; ``ends``: the clicked diameter ends (JSON world-mm triples keyed by
    ``END_COLUMNS``) of a new lesion drawn on the image, NULL otherwise."""
    points = [ends[c] for c in END_COLUMNS] if ends else [None] * len(END_COLUMNS)
    con.execute(
        """INSERT INTO reader_values (patient_key, study_uid, value_kind, lesion_index, value_json, before_json,
               note, entered_by, entered_at, request_id, d1_p0, d1_p1, d2_p0, d2_p1)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [patient_key, study_uid, kind.value, lesion_index, json.dumps(value, sort_keys=True),
         json.dumps(before, sort_keys=True) if before is not None else None, note, user, at, request_id, *points])


def study_of_patient(con: Con, patient_key: str, study_uid: str) -> bool:
    return bool(con.execute("SELECT 1 FROM studies WHERE patient_key = ? AND study_uid = ?",
                            [patient_key, study_uid]).fetchall())


#: per study with a reader verdict: ``study_uid, basis`` ('confirmed' or 'rejected'); a study
#: missing here rests on proposed (automatic) values.
BASIS_SELECT = """SELECT study_uid,
           CASE WHEN json_extract(arg_max(value_json, entered_at), '$.accepted')::BOOLEAN
                THEN 'confirmed' ELSE 'rejected' END AS basis
    FROM reader_values WHERE value_kind = 'SEGMENTATION' GROUP BY study_uid"""


def has_reader_values(store: Store) -> bool:
    return bool(store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'reader_values'"))


# --------------------------------------------------------------------------- the dashboard's reads


def read_lesion_table(store: Store, patient_key: str) -> pd.DataFrame:
    """Every lesion of the patient's current measurements, oldest scan first: diameters, product,
    volume, measurability, tracked identity, whether it continues a baseline target, and the
    diameter ends (JSON world-mm triples; NULL for rows measured before they were stored)."""
    tables = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}
    if not {"lesions", "measurements"} <= tables:
        return pd.DataFrame()
    has_ends = bool(store.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'lesions' "
                                "AND column_name = 'd1_p0'"))
    ends = "l.d1_p0, l.d1_p1, l.d2_p0, l.d2_p1" if has_ends else "NULL AS d1_p0, NULL AS d1_p1, NULL AS d2_p0, NULL AS d2_p1"
    baseline = ("""LEFT JOIN registrations r ON CAST(r.registration_id AS VARCHAR) = m.registration_id
                   LEFT JOIN measurements mb ON mb.study_uid = r.reference_study_uid AND NOT mb.superseded
                   LEFT JOIN lesions b ON b.measurement_id = mb.measurement_id AND b.lesion_index = l.track_id"""
                if "registrations" in tables else "")
    target = "coalesce(b.is_target, false)" if baseline else "false"
    sql = f"""SELECT m.study_uid, m.scan_date, l.lesion_index, l.track_id, l.volume_ml, l.d1_mm, l.d2_mm,
                     l.product_mm2, l.slice_index, l.n_slices, l.measurable, l.is_target OR {target} AS is_target,
                     l.is_new, l.note, {ends}
              FROM lesions l JOIN measurements m USING (measurement_id) {baseline}
              WHERE m.patient_key = ? AND NOT m.superseded
              ORDER BY m.scan_date, l.lesion_index"""  # noqa: S608
    return store.con.sql(sql, params=[patient_key]).to_arrow_table().to_pandas()


def read_reader_history(store: Store, patient_key: str) -> pd.DataFrame:
    """Every reader entry of the patient, newest first (who, when, what, before, after, note, and the
    diameter ends of a new lesion drawn on the image: NULL for other entries and before migration 6)."""
    tables = {r[0] for r in store.query("SELECT table_name FROM information_schema.tables")}
    if "reader_values" not in tables:
        return pd.DataFrame(columns=["study_uid", "value_kind", "lesion_index", "value_json", "before_json",
                                     "note", "entered_by", "entered_at", *END_COLUMNS])
    has_ends = bool(store.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'reader_values' "
                                "AND column_name = 'd1_p0'"))
    ends = ", ".join(END_COLUMNS) if has_ends else ", ".join(f"NULL AS {c}" for c in END_COLUMNS)
    return store.con.sql(
        f"""SELECT study_uid, value_kind, lesion_index, value_json, before_json, note, entered_by, entered_at,
                  {ends}
           FROM reader_values WHERE patient_key = ? ORDER BY entered_at DESC, reader_value_id DESC""",  # noqa: S608
        params=[patient_key]).to_arrow_table().to_pandas()
