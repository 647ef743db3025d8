"""The tumour-board write queue: requests, apply with audit, idempotency, failures, the lock."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date

import pytest

from dashboard.board_queue import submit
from engine.store import open_store
from engine.store.board_requests import BoardRequest, Decision, RequestKind, pending_requests, write_request
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.writer_presence import WriterState
from tests.dashboard.store_factory import Built


def _ack(alert_id: int, patient_key: str = "P-ALERT") -> BoardRequest:
    return BoardRequest(kind=RequestKind.ACKNOWLEDGE_ALERT, user="dr.test", patient_key=patient_key,
                        payload={"alert_id": str(alert_id), "note": "seen"})


def test_request_round_trips_through_json() -> None:
    request = BoardRequest(kind=RequestKind.RECORD_DECISION, user="dr.test", patient_key="P-1",
                           payload={"decision": "ADVANCED_IMAGING", "note": "perfusion MRI"})
    assert BoardRequest.from_json(request.to_json()) == request


@pytest.mark.parametrize(("kind", "patient_key", "payload", "match"), [
    (RequestKind.ACKNOWLEDGE_ALERT, "P-1", {"note": ""}, "must have alert_id"),
    (RequestKind.RECORD_DECISION, "P-1", {"decision": "PRAY", "note": "x"}, "PRAY"),
    (RequestKind.CORRECT_EVENT, "P-1", {"event": "RT_END", "event_date": "2025-13-01", "note": "x"}, "month"),
    (RequestKind.RECORD_DECISION, None, {"decision": "OTHER", "note": "x"}, "patient_key"),
])
def test_invalid_requests_are_refused(kind: RequestKind, patient_key: str | None, payload: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BoardRequest(kind=kind, user="dr.test", patient_key=patient_key, payload=payload)


def test_actions_are_applied_in_transactions_with_audit_rows(built_state: Built) -> None:
    folder = built_state.settings.state_dir / "requests"
    write_request(folder, _ack(built_state.alert_id))
    write_request(folder, BoardRequest(kind=RequestKind.RECORD_DECISION, user="dr.test", patient_key="P-ALERT",
                                       payload={"decision": Decision.SHORT_INTERVAL_SCAN.value,
                                                "note": "re-scan in 4 weeks", "study_uid": "1.2"}))
    write_request(folder, BoardRequest(kind=RequestKind.CORRECT_EVENT, user="dr.test", patient_key="P-ALERT",
                                       payload={"event": "RT_END", "event_date": "2025-01-19",
                                                "note": "letter from RT"}))
    with open_store(built_state.settings.db_path) as store:
        result = apply_board_requests(store, folder)
        assert len(result.applied) == 3 and not result.failed
        assert result.patients_to_reassess == ("P-ALERT",)
        assert store.query("SELECT acknowledged_by FROM alerts") == [("dr.test",)]
        assert store.query("SELECT decision, note, study_uid FROM board_decisions") == [
            ("SHORT_INTERVAL_SCAN", "re-scan in 4 weeks", "1.2")]
        assert store.query("SELECT event_date, source, entered_by FROM clinical_events "
                           "WHERE patient_key = 'P-ALERT' AND event = 'RT_END'") == [
            (date(2025, 1, 19), "board", "dr.test")]
        audit = store.query('SELECT action, detail FROM audit ORDER BY audit_id')
    assert [a for a, _ in audit] == ["acknowledge_alert", "record_decision", "correct_event"]
    assert audit[2][1] == "RT_END 2025-01-05 -> 2025-01-19; note: letter from RT"
    assert pending_requests(folder) == []


def test_a_request_is_applied_once_even_if_its_file_comes_back(built_state: Built) -> None:
    folder = built_state.settings.state_dir / "requests"
    path = write_request(folder, _ack(built_state.alert_id))
    keep = shutil.copy(path, built_state.settings.state_dir / "copy.json")
    with open_store(built_state.settings.db_path) as store:
        assert len(apply_board_requests(store, folder).applied) == 1
        shutil.copy(keep, path)  # a crash after the commit, before the file was removed
        again = apply_board_requests(store, folder)
        assert again.skipped and not again.applied and not again.failed
        assert store.query("SELECT count(*) FROM audit WHERE action = 'acknowledge_alert'") == [(1,)]


@pytest.mark.parametrize("patient_key", ["P-CALM", "P-ALERT"], ids=["alert of another patient", "twice"])
def test_a_failing_request_is_parked_and_changes_nothing(built_state: Built, patient_key: str) -> None:
    folder = built_state.settings.state_dir / "requests"
    with open_store(built_state.settings.db_path) as store:
        if patient_key == "P-ALERT":
            write_request(folder, _ack(built_state.alert_id))
            apply_board_requests(store, folder)
        audits_before = store.query("SELECT count(*) FROM audit")[0][0]
        write_request(folder, _ack(built_state.alert_id, patient_key))
        result = apply_board_requests(store, folder)
        assert not result.applied and len(result.failed) == 1
        assert store.query("SELECT status FROM board_requests WHERE status = 'FAILED'") == [("FAILED",)]
        assert store.query("SELECT count(*) FROM audit")[0][0] == audits_before
    assert len(list((folder / "failed").glob("*.json"))) == 1


def test_a_repeating_event_needs_the_date_it_corrects(built_state: Built) -> None:
    folder = built_state.settings.state_dir / "requests"
    write_request(folder, BoardRequest(kind=RequestKind.CORRECT_EVENT, user="dr.test", patient_key="P-ALERT",
                                       payload={"event": "CHEMO_CYCLE", "event_date": "2025-02-03", "note": "x"}))
    with open_store(built_state.settings.db_path) as store:
        result = apply_board_requests(store, folder)
    assert "say which date to correct" in result.failed[0][1]


def test_a_snapshot_cannot_apply_requests(built_state: Built) -> None:
    with open_store(built_state.settings.snapshot_path, read_only=True) as snapshot:
        with pytest.raises(ValueError, match="writer's store"):
            apply_board_requests(snapshot, built_state.settings.state_dir / "requests")


def test_dashboard_queues_requests_while_a_writer_holds_the_store(built_state: Built) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " sys.stdin.read()", str(built_state.settings.db_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        submitted = submit(built_state.settings, _ack(built_state.alert_id))
        assert submitted.writer != WriterState.RUNNING and "pipeline" in submitted.message
        assert len(pending_requests(built_state.settings.state_dir / "requests")) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with open_store(built_state.settings.db_path) as store:  # the writer's turn
        result = apply_board_requests(store, built_state.settings.state_dir / "requests")
    assert len(result.applied) == 1 and not result.failed
