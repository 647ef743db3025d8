"""Issue 32: where the diameters were measured (world-mm ends, stored), and the reader's values
applied by the writer through board requests, audited, revisable, and read by the reassessment."""

from __future__ import annotations

import functools
import json
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from engine.criteria import Mode, load_criteria
from engine.events import parse_clinical_events
from engine.measurement import measure_study
from engine.usecases.patient_course import reassess_patient
from engine.reader_values import Confirmation, ReaderValueKind, confirmation
from engine.store import open_store
from engine.store import reader as reader_sql
from engine.store.assessment import ModelInfo, import_clinical_events, read_timeline, write_measurement
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.board_requests import BoardRequest, RequestKind, write_request
from engine.types import Label, Volume

RANO2 = load_criteria("rano2")
EVENTS = "patient_id,event_date,event,value\nP-0001,2025-01-06,RT_END,\nP-0001,2024-11-20,MGMT,methylated\n"
AFFINE = np.array([[1.0, 0, 0, -30.0], [0, 1.0, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])


def _disc(radius_mm: float, *, stretch: float = 1.0) -> Volume:
    labels = np.zeros((48, 48, 10), np.uint8)
    a, b = np.mgrid[0:48, 0:48]
    labels[:, :, 2:7][((a - 23.5) / stretch) ** 2 + (b - 23.5) ** 2 <= radius_mm**2] = Label.ET
    return Volume(labels, AFFINE)


def test_diameter_ends_are_world_mm_on_the_measured_slice_and_as_long_as_the_diameters() -> None:
    m = measure_study(_disc(9.0, stretch=1.6), criteria=RANO2.measurability)
    (lesion,) = m.lesions
    seg = m.segments[lesion.lesion_index]
    assert seg.slice_index == lesion.slice_index and 2 <= seg.slice_index <= 6
    z = 5.0 + 2.0 * seg.slice_index  # every end lies on that axial slice, in world mm
    for p in (seg.d1_p0, seg.d1_p1, seg.d2_p0, seg.d2_p1):
        assert p[2] == pytest.approx(z)
    assert np.linalg.norm(np.subtract(seg.d1_p1, seg.d1_p0)) == pytest.approx(lesion.d1_mm, abs=1e-2)
    assert np.linalg.norm(np.subtract(seg.d2_p1, seg.d2_p0)) == pytest.approx(lesion.d2_mm, abs=1e-2)
    d1, d2 = np.subtract(seg.d1_p1, seg.d1_p0), np.subtract(seg.d2_p1, seg.d2_p0)
    assert abs(d1 @ d2) / (np.linalg.norm(d1) * np.linalg.norm(d2)) < np.sin(np.radians(5.0)) + 1e-9
    assert abs(d1[0]) > abs(d1[1])  # the long axis of the ellipse runs along x (voxel axis 0)


@functools.lru_cache(maxsize=None)
def _measured(radius_mm: float):
    return measure_study(_disc(radius_mm), criteria=RANO2.measurability)


def _course(tmp_path):
    """Four scans (pre-baseline, baseline at 4 wk, +44 % at 9 wk, 14 wk) of one patient in a real store."""
    store = open_store(tmp_path / "r.duckdb")
    events, _ = parse_clinical_events(EVENTS)
    rt_end = date(2025, 1, 6)
    model = ModelInfo(name="ground_truth", version="synth-1")
    with store.transaction() as con:
        import_clinical_events(con, events, source="clinical_events.csv", entered_by="test")
        for n, (weeks, radius) in enumerate([(-3, 12), (4, 10), (9, 12), (14, 10)]):
            scan_date = rt_end + timedelta(weeks=weeks)
            con.execute("""INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status, seen_at,
                               ingested_at) VALUES (?, ?, 'P-0001', ?, 'ASSESSED', now(), now())""",
                        [f"S{n}", f"o{n}", scan_date])
            write_measurement(con, study_uid=f"S{n}", patient_key="P-0001", scan_date=scan_date,
                              measurement=_measured(radius), model=model,
                              criteria_label=RANO2.label)
        reassess_patient(con, patient_key="P-0001", criteria=RANO2, mode=Mode.TWO_D)
    return store


def _apply(store, tmp_path, kind: RequestKind, **payload: str):
    request = BoardRequest(kind=kind, user="dr.reader", patient_key="P-0001", payload={"note": "", **payload})
    write_request(tmp_path / "requests", request)
    applied = apply_board_requests(store, tmp_path / "requests")
    assert applied.applied == (request.request_id,), applied.failed
    assert applied.patients_to_reassess == ("P-0001",)
    with store.transaction() as con:  # what the writer's reassessment does after applying
        reassess_patient(con, patient_key="P-0001", criteria=RANO2, mode=Mode.TWO_D)
    return [(r["response"], r["final_response"]) for r in read_timeline(store.con, "P-0001")]


def test_diameter_ends_are_stored_as_json_world_triples(tmp_path) -> None:
    store = _course(tmp_path)
    row = store.query_dicts("SELECT * FROM lesions WHERE study_uid = 'S1'")[0]
    ends = [json.loads(row[c]) for c in ("d1_p0", "d1_p1", "d2_p0", "d2_p1")]
    assert all(len(p) == 3 for p in ends)
    assert np.linalg.norm(np.subtract(ends[1], ends[0])) == pytest.approx(row["d1_mm"], abs=1e-2)
    store.close()


def test_a_corrected_diameter_pair_is_audited_revisable_and_recomputes_the_response(tmp_path) -> None:
    store = _course(tmp_path)
    assert [r["response"] for r in read_timeline(store.con, "P-0001")][2] == "PRELIM_PD"  # +44 % at 9 weeks
    auto = store.query_dicts("SELECT d1_mm, d2_mm FROM lesions WHERE study_uid = 'S1'")[0]
    # the reader measures the 9-week lesion as the baseline's size: no progression any more
    calls = _apply(store, tmp_path, RequestKind.SET_DIAMETERS, study_uid="S2", lesion_index="1",
                   d1_mm=f"{auto['d1_mm']:.2f}", d2_mm=f"{auto['d2_mm']:.2f}")
    assert calls[2][0] == "DISCORDANT"  # 2D flat by the reader, the volume still +44 %: to a reader, not PD
    audit = store.query_dicts("SELECT * FROM audit WHERE action = 'reader_diameters'")
    assert len(audit) == 1 and audit[0]["user"] == "dr.reader" and "study=S2 lesion 1" in audit[0]["detail"]
    assert "'d1_mm': 24" in audit[0]["detail"]  # before: the automatic 24 mm (a 12 mm radius disc)
    # revised: the reader's second value wins, and its "before" is the first reader value
    calls = _apply(store, tmp_path, RequestKind.SET_DIAMETERS, study_uid="S2", lesion_index="1",
                   d1_mm="30", d2_mm="25")
    assert calls[2][0] == "PRELIM_PD"
    rows = store.query_dicts("SELECT before_json, value_json FROM reader_values ORDER BY reader_value_id")
    assert len(rows) == 2 and json.loads(rows[1]["before_json"])["d1_mm"] == pytest.approx(auto["d1_mm"], abs=0.01)
    store.close()


def test_a_rejected_segmentation_makes_the_scan_not_evaluable_and_acceptance_confirms(tmp_path) -> None:
    store = _course(tmp_path)
    calls = _apply(store, tmp_path, RequestKind.REJECT_SEGMENTATION, study_uid="S2",
                   note="motion artefact: enhancement not assessable")
    assert calls[2][0] == "NE"
    entries = reader_sql.read_entries(store.con, "P-0001")
    assert confirmation(entries, "S2") is Confirmation.REJECTED
    assert confirmation(entries, "S3") is Confirmation.PROPOSED
    _apply(store, tmp_path, RequestKind.ACCEPT_SEGMENTATION, study_uid="S2")  # revised: accepted after all
    entries = reader_sql.read_entries(store.con, "P-0001")
    assert confirmation(entries, "S2") is Confirmation.CONFIRMED
    assert [e.kind for e in entries] == [ReaderValueKind.SEGMENTATION] * 2
    store.close()


def test_clinical_values_recorded_by_the_reader_enter_the_assessment(tmp_path) -> None:
    store = _course(tmp_path)
    before = _apply(store, tmp_path, RequestKind.RECORD_STEROID_DOSE, study_uid="S3", mg="8")
    after = _apply(store, tmp_path, RequestKind.RECORD_CLINICAL_STATUS, study_uid="S3", status="worse")
    assert after[3] == ("PD", "PD") and before[3] != after[3]  # decline after a preliminary PD confirms it
    store.close()


@pytest.mark.parametrize(("kind", "payload", "message"), [
    (RequestKind.SET_DIAMETERS, {"study_uid": "S2", "lesion_index": "1", "d1_mm": "10", "d2_mm": "12"}, "must not exceed"),
    (RequestKind.SET_DIAMETERS, {"study_uid": "S2", "lesion_index": "1", "d1_mm": "-1", "d2_mm": "0"}, "d1_mm"),
    (RequestKind.REJECT_SEGMENTATION, {"study_uid": "S2"}, "reason"),
    (RequestKind.RECORD_NEW_LESION, {"study_uid": "S2", "present": "maybe"}, "'true' or 'false'"),
])
def test_malformed_reader_values_are_refused_when_the_request_is_made(kind, payload, message) -> None:
    with pytest.raises(ValueError, match=message):
        BoardRequest(kind=kind, user="dr.reader", patient_key="P-0001", payload={"note": "", **payload})


def test_a_value_for_a_scan_of_another_patient_is_refused_by_the_writer(tmp_path) -> None:
    store = _course(tmp_path)
    request = BoardRequest(kind=RequestKind.ACCEPT_SEGMENTATION, user="dr.reader", patient_key="P-0002",
                           payload={"study_uid": "S2", "note": ""})
    write_request(tmp_path / "requests", request)
    applied = apply_board_requests(store, tmp_path / "requests")
    assert applied.failed and "does not belong to this patient" in applied.failed[0][1]
    assert not store.query("SELECT * FROM reader_values")
    store.close()


def test_a_critical_alert_waits_for_confirmation_when_the_setting_says_so(tmp_path) -> None:
    from engine.store.alerts import due_deliveries

    store = _course(tmp_path)
    now = datetime(2025, 6, 1, 12)
    with store.transaction() as con:
        for alert_id, severity, kind in ((1, "CRITICAL", "ALERT_PD_CONFIRMED"), (2, "CRITICAL", "QA_STUDY_QUARANTINED"),
                                         (3, "WARNING", "ALERT_PPD")):
            con.execute("""INSERT INTO alerts (alert_id, idempotency_key, alert_type, severity, patient_key, study_uid,
                               reason, link, criteria, created_at) VALUES (?, ?, ?, ?, 'P-0001', 'S2', 'r', '/', 'c', ?)""",
                        [alert_id, f"k{alert_id}", kind, severity, now])
            con.execute("""INSERT INTO alert_outbox (alert_id, sink, kind, status, next_attempt_at, created_at)
                           VALUES (?, 'webhook', 'NOTICE', 'PENDING', ?, ?)""", [alert_id, now, now])
    assert {r["alert_id"] for r in due_deliveries(store, now)} == {1, 2, 3}  # setting off: nothing waits
    assert {r["alert_id"] for r in due_deliveries(store, now, hold_unconfirmed_critical=True)} == {2, 3}
    _apply(store, tmp_path, RequestKind.REJECT_SEGMENTATION, study_uid="S2", note="artefact")
    assert {r["alert_id"] for r in due_deliveries(store, now, hold_unconfirmed_critical=True)} == {2, 3}
    _apply(store, tmp_path, RequestKind.ACCEPT_SEGMENTATION, study_uid="S2")
    assert {r["alert_id"] for r in due_deliveries(store, now, hold_unconfirmed_critical=True)} == {1, 2, 3}
    store.close()


def test_a_discordant_scan_is_routed_to_review_until_a_reader_confirms_it(tmp_path) -> None:
    from engine.store.review_queue import read_review_queue

    store = _course(tmp_path)
    assert read_review_queue(store, "P-0001").empty  # the +44 % was resolved by the next scan
    auto = store.query_dicts("SELECT d1_mm, d2_mm FROM lesions WHERE study_uid = 'S1'")[0]
    _apply(store, tmp_path, RequestKind.SET_DIAMETERS, study_uid="S2", lesion_index="1",
           d1_mm=f"{auto['d1_mm']:.2f}", d2_mm=f"{auto['d2_mm']:.2f}")  # 2D flat, the volume +44 %
    queue = read_review_queue(store, "P-0001")
    assert list(zip(queue["study_uid"], queue["reason"], strict=True)) == [
        ("S2", "2D and volumetric assessments disagree (discordant)")]
    _apply(store, tmp_path, RequestKind.ACCEPT_SEGMENTATION, study_uid="S2")
    assert read_review_queue(store, "P-0001").empty
    store.close()
