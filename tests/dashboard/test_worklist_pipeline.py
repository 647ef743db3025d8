"""Issue 32: the progression patient tops the worklist after its alerts are acknowledged, on a store
the real pipeline produced (``pipeline_state``), not only on the ranking function.

The patient's scans were ingested, segmented, registered and measured by the real pipeline. On
its own the test-size course ends DISCORDANT (SPD +25 % over the nadir, ET volume +2 %): a reader
decides. Through the board request path, as the tumour board would, the RT end date is entered, the
reader accepts the last scan's segmentation and records unequivocal non-measurable progression; the
writer re-assesses: PD past the 12-week window, a CRITICAL "PD confirmed" alert. Two other patients
compete: one with newer scans and more open alerts, CRITICAL ones included; one with a preliminary
PD awaiting confirmation. Every open alert of the progression patient is then acknowledged through
the board request path, and the worklist (its read model and the page) still puts it first.
"""

from __future__ import annotations

from datetime import date, datetime

from streamlit.testing.v1 import AppTest

from dashboard.board_queue import submit
from dashboard.data import query_worklist
from engine.alerts.alert import Alert, AlertType, Severity
from engine.settings import Settings
from engine.store import open_store, publish_snapshot
from engine.store import alerts as alert_sql
from engine.store.board_requests import BoardRequest, RequestKind
from engine.store.read_model import read_alerts
from tests.dashboard.conftest import APP_PATH, log_in
from tests.dashboard.pipeline_state import PipelineState
from tests.dashboard.test_reader_pipeline import writer_cycle

NOW = datetime(2025, 9, 1, 9, 0)
CRITERIA = "RANO 2.0, criteria v2"
#: (patient, study_uid, scan date, response) of the competing patients; their scans are newer.
COMPETITORS = (("P-CRIT", "9.1", date(2025, 1, 12), "BASELINE"), ("P-CRIT", "9.2", date(2025, 8, 20), "SD"),
               ("P-WAIT", "9.3", date(2025, 2, 1), "BASELINE"), ("P-WAIT", "9.4", date(2025, 8, 25), "PRELIM_PD"))
#: open alerts of the competitors (patient, study_uid, date, type, severity): P-CRIT has the most.
COMPETING_ALERTS = (("P-CRIT", "9.2", date(2025, 8, 20), AlertType.NEW_LESION, Severity.CRITICAL),
                    ("P-CRIT", "9.2", date(2025, 8, 20), AlertType.RAPID_GROWTH, Severity.CRITICAL),
                    ("P-CRIT", "9.2", date(2025, 8, 20), AlertType.QA_MEASUREMENT, Severity.WARNING),
                    ("P-WAIT", "9.4", date(2025, 8, 25), AlertType.PPD, Severity.WARNING))


def _request(settings: Settings, key: str, kind: RequestKind, **payload: str) -> None:
    submit(settings, BoardRequest(kind=kind, user="dr.test", patient_key=key, payload={"note": "", **payload}))


def _add_competitors(settings: Settings) -> None:
    """Two patients written as the writer writes them (studies, assessments, alerts with their outbox)."""
    with open_store(settings.db_path) as store:
        with store.transaction() as con:
            for patient, uid, day, response in COMPETITORS:
                con.execute("INSERT INTO patients VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [patient, NOW, day])
                con.execute("""INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status,
                                   sequences, seen_at, ingested_at) VALUES (?, ?, ?, ?, 'ASSESSED', 'T1c', ?, ?)""",
                            [uid, f"orthanc-{uid}", patient, day, NOW, NOW])
                con.execute("""INSERT INTO assessments (study_uid, patient_key, scan_date, profile, mode, criteria,
                                   criteria_version, response, final_response, reason, assessed_at)
                               VALUES (?, ?, ?, 'rano2', '2d', ?, 2, ?, ?, ?, ?)""",
                            [uid, patient, day, CRITERIA, response, response, f"{response} [test reason]", NOW])
            alert_sql.enqueue_alerts(con, [
                Alert(alert_type=kind, severity=severity, patient_key=patient, study_uid=uid, study_date=day,
                      reason=f"{kind} [test reason]", link=f"/?patient={patient}", criteria=CRITERIA)
                for patient, uid, day, kind, severity in COMPETING_ALERTS], ["dashboard"], now=NOW)
        publish_snapshot(store, settings.snapshot_path)


def _worklist(settings: Settings) -> list[tuple[str, str, int]]:
    with open_store(settings.snapshot_path, read_only=True) as store:
        frame = query_worklist(store)
    return list(zip(frame["patient_key"], frame["priority"], frame["open_alerts"], strict=True))


def test_the_progression_patient_tops_the_worklist_after_its_alerts_are_acknowledged(
    pipeline_state: PipelineState,
) -> None:
    settings, key, last = pipeline_state.settings, pipeline_state.patient_key, pipeline_state.study_uids[-1]
    _request(settings, key, RequestKind.CORRECT_EVENT, event="RT_END", event_date="2025-03-01", note="from the letter")
    _request(settings, key, RequestKind.RECORD_NONMEASURABLE_PROGRESSION, study_uid=last, present="true")
    _request(settings, key, RequestKind.ACCEPT_SEGMENTATION, study_uid=last)
    assert writer_cycle(settings) == ()
    _add_competitors(settings)
    with open_store(settings.snapshot_path, read_only=True) as store:
        (response, reason), = store.query("SELECT response, reason FROM timeline WHERE study_uid = ?", [last])
        mine = read_alerts(store, key, only_open=True)
    assert response == "PD" and "past the 12-week window" in reason, reason
    basis = dict(zip(mine["alert_type"], mine["values_basis"], strict=True))
    assert basis["ALERT_PD_CONFIRMED"] == "confirmed"  # the reader accepted the scan it rests on
    before = _worklist(settings)
    assert [(k, p) for k, p, _ in before] == [(key, "Confirmed progression"),
                                              ("P-WAIT", "Preliminary PD, awaiting confirmation"),
                                              ("P-CRIT", "New alerts")]

    for alert_id in mine["alert_id"]:  # the board acknowledges every open alert of the patient
        _request(settings, key, RequestKind.ACKNOWLEDGE_ALERT, alert_id=str(int(alert_id)), note="board: 2nd line")
    assert writer_cycle(settings) == ()
    with open_store(settings.snapshot_path, read_only=True) as store:
        assert read_alerts(store, key, only_open=True).empty
        (acks,), = store.query("SELECT count(*) FROM audit WHERE action = 'acknowledge_alert' AND patient_key = ?",
                               [key])
    assert acks == len(mine)
    after = _worklist(settings)
    assert after[0] == (key, "Confirmed progression", 0), after
    assert [k for k, _, _ in after] == [key, "P-WAIT", "P-CRIT"]
    assert dict((k, n) for k, _, n in after)["P-CRIT"] == 3  # more open alerts, newer scan: still below

    at = AppTest.from_file(str(APP_PATH), default_timeout=120)  # what the board sees
    at.run()
    page = log_in(at).dataframe[0].value
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list(page["patient_key"]) == [key, "P-WAIT", "P-CRIT"]
    assert page.iloc[0]["latest_call"].startswith("PD") and page.iloc[0]["open_alerts"] == 0
