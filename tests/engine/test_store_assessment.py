"""Round trip through a real DuckDB file: measurements, lesions, assessments, risk, growth, events, timeline."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from engine.criteria import Mode, load_criteria
from engine.events import parse_clinical_events, patient_context
from engine.measurement import measure_study
from engine.response import Timepoint, assess_patient
from engine.usecases.patient_course import reassess_patient
from engine.risk import psp_evidence, psp_probability
from engine.store import open_store
from engine.store.assessment import (
    ModelInfo,
    import_clinical_events,
    load_clinical_events,
    read_current_measurements,
    read_growth,
    read_lesions,
    read_timeline,
    replace_assessment,
    replace_growth,
    write_measurement,
)
from engine.trajectory import fit_growth_since_nadir
from engine.types import Label, Response, Volume

RANO2 = load_criteria("rano2")
EVENTS = """patient_id,event_date,event,value
P-0001,2025-01-06,RT_END,
P-0001,2024-11-20,MGMT,methylated
P-0001,2025-02-03,STEROID_DOSE,2
"""


def _labels(radius_mm: int) -> Volume:
    labels = np.zeros((48, 48, 10), np.uint8)
    a, b = np.mgrid[0:48, 0:48]
    labels[:, :, 2:7][(a - 23.5) ** 2 + (b - 23.5) ** 2 <= radius_mm**2] = Label.ET
    labels[10:14, 10:14, 2:4] = Label.NETC
    return Volume(labels, np.diag([1.0, 1.0, 2.0, 1.0]))


def test_round_trip_through_a_duckdb_file(tmp_path) -> None:
    store = open_store(tmp_path / "gliowatch.duckdb")
    events, errors = parse_clinical_events(EVENTS)
    assert not errors
    rt_end = date(2025, 1, 6)
    scans = [(f"1.2.3.{n}", rt_end + timedelta(weeks=w), hw) for n, (w, hw) in enumerate([(4, 10), (10, 12), (16, 10)])]
    model = ModelInfo(name="ground_truth", version="synth-1")
    with store.transaction() as con:
        assert import_clinical_events(con, events, source="clinical_events.csv", entered_by="test") == 3
        ids = {}
        for study_uid, scan_date, hw in scans:
            m = measure_study(_labels(hw), criteria=RANO2.measurability)
            ids[study_uid] = write_measurement(con, study_uid=study_uid, patient_key="P-0001", scan_date=scan_date,
                                               measurement=m, model=model, criteria_label=RANO2.label)
    # a re-measurement supersedes the first one
    with store.transaction() as con:
        m = measure_study(_labels(10), criteria=RANO2.measurability)
        ids["1.2.3.0"] = write_measurement(con, study_uid="1.2.3.0", patient_key="P-0001", scan_date=scans[0][1],
                                           measurement=m, model=ModelInfo("segresnet", "0.1", "ab" * 32),
                                           criteria_label=RANO2.label)
    with store.transaction() as con:
        context = patient_context(load_clinical_events(con, "P-0001"), "P-0001")
        rows = read_current_measurements(con, "P-0001")
        timepoints = [Timepoint(scan_date=r["scan_date"], study_uid=r["study_uid"], spd_mm2=r["spd_mm2"],
                                et_ml=r["et_ml"], steroid_dose_mg=2.0) for r in rows]
        calls = assess_patient(timepoints, context, criteria=RANO2, mode=Mode.TWO_D)
        risks = {c.study_uid: psp_probability(psp_evidence(tp, None, context=context), criteria=RANO2)
                 for c, tp in zip(calls, timepoints, strict=True) if c.category is Response.PRELIM_PD}
        replace_assessment(con, patient_key="P-0001", calls=calls, criteria=RANO2, mode=Mode.TWO_D, risks=risks,
                           measurement_ids=ids)
        fits = fit_growth_since_nadir([(r["scan_date"], r["et_ml"]) for r in rows], label="ET", growth=RANO2.growth)
        replace_growth(con, patient_key="P-0001", fits=fits, criteria_label=RANO2.label)
    store.close()

    reopened = open_store(tmp_path / "gliowatch.duckdb")  # real file, schema re-applied idempotently
    timeline = read_timeline(reopened.con, "P-0001")
    # issue 32: the scan that resolves the preliminary PD is SD; pseudoprogression is the preliminary-PD scan's label
    assert [r["response"] for r in timeline] == ["BASELINE", "PRELIM_PD", "SD"]
    assert [r["final_response"] for r in timeline] == ["BASELINE", "PSEUDOPROGRESSION", "SD"]
    assert timeline[0]["spd_mm2"] == pytest.approx(400.0, rel=0.1)  # a 20 mm disc on 5 slices
    assert timeline[0]["model_name"] == "segresnet"  # the superseding measurement
    assert timeline[1]["psp_probability"] == pytest.approx(risks["1.2.3.1"].probability)
    assert "RANO 2.0, criteria v2" in timeline[1]["reason"]
    assert timeline[0]["scan_date"] == scans[0][1]
    assert len(reopened.query("SELECT * FROM measurements WHERE study_uid = '1.2.3.0'")) == 2
    lesions = read_lesions(reopened.con, ids["1.2.3.1"])
    assert len(lesions) == 1 and lesions[0]["is_target"] and lesions[0]["measurable"]
    growth = read_growth(reopened.con, "P-0001")
    assert {(g["label"], g["model"]) for g in growth} == {("ET", "exponential"), ("ET", "gompertz")}
    assert load_clinical_events(reopened.con, "P-0001")[0].patient_id == "P-0001"
    reopened.close()


def test_reassessment_replaces_rows_and_events_reimport_is_idempotent(tmp_path) -> None:
    store = open_store(tmp_path / "s.duckdb")
    events, _ = parse_clinical_events(EVENTS)
    context = patient_context(events, "P-0001")
    timepoints = [Timepoint(scan_date=date(2025, 2, 3), study_uid="A", spd_mm2=500.0),
                  Timepoint(scan_date=date(2025, 6, 3), study_uid="B", spd_mm2=900.0)]
    calls = assess_patient(timepoints, context, criteria=RANO2, mode=Mode.TWO_D)
    for _ in range(2):
        with store.transaction() as con:
            import_clinical_events(con, events, source="csv", entered_by="test")
            replace_assessment(con, patient_key="P-0001", calls=calls, criteria=RANO2, mode=Mode.TWO_D)
    assert store.query("SELECT count(*) FROM clinical_events")[0][0] == 3
    assert store.query("SELECT response, pd_date FROM assessments ORDER BY scan_date") == [
        ("BASELINE", None), ("PD", date(2025, 6, 3))]
    with pytest.raises(RuntimeError), store.transaction() as con:  # the caller's transaction rolls back
        replace_assessment(con, patient_key="P-0001", calls=(), criteria=RANO2, mode=Mode.TWO_D)
        raise RuntimeError("alert outbox failed")
    assert store.query("SELECT count(*) FROM assessments")[0][0] == 2
    store.close()


def test_reassess_patient_from_what_is_stored(tmp_path) -> None:
    store = open_store(tmp_path / "r.duckdb")
    events, _ = parse_clinical_events(EVENTS + "P-0001,2025-04-10,CLINICAL_STATUS,worse\n")
    rt_end = date(2025, 1, 6)
    model = ModelInfo(name="ground_truth", version="synth-1")
    with store.transaction() as con:
        import_clinical_events(con, events, source="clinical_events.csv", entered_by="test")
        for n, (weeks, radius) in enumerate([(-3, 12), (4, 10), (9, 12), (14, 13)]):
            m = measure_study(_labels(radius), criteria=RANO2.measurability)
            write_measurement(con, study_uid=f"S{n}", patient_key="P-0001",
                              scan_date=rt_end + timedelta(weeks=weeks), measurement=m, model=model,
                              criteria_label=RANO2.label)
        result = reassess_patient(con, patient_key="P-0001", criteria=RANO2, mode=Mode.TWO_D)
    timeline = read_timeline(store.con, "P-0001")
    # S2 (9 wk): +44 % in the window -> preliminary; S3: clinical decline (events) -> PD dated back to S2
    assert [(r["response"], r["final_response"]) for r in timeline] == [
        ("PRE_BASELINE", "PRE_BASELINE"), ("BASELINE", "BASELINE"), ("PRELIM_PD", "PD"), ("PD", "PD")]
    assert timeline[3]["pd_date"] == rt_end + timedelta(weeks=9)
    assert timeline[2]["psp_probability"] == pytest.approx(result.risks["S2"].probability)
    assert len(read_growth(store.con, "P-0001")) == 4  # ET and SNFH x exponential and Gompertz
    store.close()


def test_measurements_record_the_config_digest_and_older_stores_gain_the_column(tmp_path) -> None:
    import duckdb

    from engine.store.schema_assessment import DDL

    path = tmp_path / "old.duckdb"
    old = duckdb.connect(str(path))  # a store from before the column: the measurements table as first created
    old.execute(DDL[0])
    old.execute("""INSERT INTO measurements (measurement_id, study_uid, patient_key, model_name, model_version,
                   criteria_version, computed_at) VALUES ('m0', 'S0', 'P-0001', 'unet', '0.3.0', 'v1', now())""")
    old.close()
    store = open_store(path)
    with store.transaction() as con:
        m = measure_study(_labels(10), criteria=RANO2.measurability)
        write_measurement(con, study_uid="S1", patient_key="P-0001", scan_date=date(2025, 3, 1), measurement=m,
                          model=ModelInfo("unet", "0.3.0", "ab" * 32, "cd" * 32), criteria_label=RANO2.label)
    rows = dict(store.query("SELECT study_uid, config_sha256 FROM measurements ORDER BY study_uid"))
    assert rows == {"S0": None, "S1": "cd" * 32}  # the old row kept, NULL: not recorded then
    store.close()


def test_a_closed_store_lets_go_of_its_connection_and_says_it_is_closed(tmp_path) -> None:
    """A Store kept alive after close() (Prefect keeps the last flow run's parameters) must not
    keep the DuckDB connection alive too; using it afterwards is a StoreError naming the file."""
    import gc
    import weakref

    from engine.errors import StoreError

    store = open_store(tmp_path / "s.duckdb")
    store.query("SELECT 1")
    connection = weakref.ref(store.con)
    store.close()
    gc.collect()
    assert connection() is None
    with pytest.raises(StoreError, match=r"s\.duckdb is closed"):
        store.query("SELECT 1")
    store.close()  # closing twice is harmless
    with open_store(tmp_path / "s.duckdb", read_only=True) as reopened:  # the file is intact
        assert reopened.query("SELECT 1") == [(1,)]


def test_a_lesion_non_measurable_at_baseline_that_becomes_measurable_is_assessed_from_the_store(tmp_path) -> None:
    """Issue 32 through the store: the follow-up's lesion is tracked (registration into the baseline, track id)
    to a baseline lesion that was not measurable, so it enters the assessment: preliminary PD at 9 weeks with a
    PsP probability, then it shrinks -> pseudoprogression on that scan, the resolving scan SD."""
    import dataclasses
    from datetime import datetime

    store = open_store(tmp_path / "e.duckdb")
    events, _ = parse_clinical_events(EVENTS)
    rt_end = date(2025, 1, 6)
    model = ModelInfo(name="ground_truth", version="synth-1")
    with store.transaction() as con:
        import_clinical_events(con, events, source="clinical_events.csv", entered_by="test")
        base = measure_study(_labels(4), criteria=RANO2.measurability)  # an 8 mm disc: non-measurable
        assert base.lesions and not base.lesions[0].measurable and base.spd_mm2 == 0.0
        write_measurement(con, study_uid="S1", patient_key="P-0001", scan_date=rt_end + timedelta(weeks=4),
                          measurement=base, model=model, criteria_label=RANO2.label,
                          track_ids={lesion.lesion_index: lesion.lesion_index for lesion in base.lesions})
        for uid, weeks, radius in (("S2", 9, 14), ("S3", 14, 4)):
            (registration_id,) = con.execute(
                """INSERT INTO registrations (study_uid, reference_study_uid, kind, matrix, method, passed, qc_reason,
                       created_at) VALUES (?, 'S1', 'baseline', '[]', 'identity', true, '', ?)
                   RETURNING registration_id""", [uid, datetime(2025, 5, 1)]).fetchone()
            m = measure_study(_labels(radius), criteria=RANO2.measurability, target_indices=())
            m = dataclasses.replace(m, spd_mm2=0.0)  # no baseline target to continue
            write_measurement(con, study_uid=uid, patient_key="P-0001", scan_date=rt_end + timedelta(weeks=weeks),
                              measurement=m, model=model, criteria_label=RANO2.label,
                              registration_id=str(registration_id),
                              track_ids={m.lesions[0].lesion_index: base.lesions[0].lesion_index})
        result = reassess_patient(con, patient_key="P-0001", criteria=RANO2, mode=Mode.TWO_D)
    timeline = read_timeline(store.con, "P-0001")
    assert [(r["response"], r["final_response"]) for r in timeline] == [
        ("BASELINE", "BASELINE"), ("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD")]
    assert "non-measurable at baseline is now measurable" in timeline[1]["reason"]
    assert result.timepoints[1].became_measurable and result.timepoints[1].emerging_spd_mm2 > 100.0
    assert timeline[1]["psp_probability"] == pytest.approx(result.risks["S2"].probability)
    store.close()
