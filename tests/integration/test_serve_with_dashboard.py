"""`gliowatch serve` starting while the dashboard runs: the service runs and applies what was queued.

The dashboard used to open the main store itself when it was free; a `serve` started while it
held the store's lock exited with a non-retryable error. Now the dashboard only queues requests.
Here the real dashboard server runs, a request is queued through the dashboard's submit path
before any store exists, then the real `serve` process starts against the real Orthanc, applies
it, and keeps applying what a dashboard session (AppTest, in this process) sends while it runs.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.board_queue import submit, writer_status
from engine.archive.orthanc import OrthancArchive
from engine.auth import add_user
from engine.pseudonym import patient_key
from engine.settings import Settings
from engine.store.board_requests import BoardRequest, RequestKind, pending_requests, requests_dir
from engine.store.writer_presence import WriterState
from flows.cmd_dashboard import APP_PATH, start_dashboard
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    WatcherProcess,
    prefect_home,  # noqa: F401 - fixture
    snapshot_count,
    watcher_env,
)
from tests.integration.test_stream import upload, wait_stable
from tests.support import free_port, wait_until_healthy

pytestmark = pytest.mark.integration
DECISIONS = "SELECT count(*) FROM board_decisions"


def _record_decision_in_the_app(user: str, password: str, key: str) -> AppTest:
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.run()
    at.text_input(key="login_name").input(user)
    at.text_input(key="login_password").input(password)
    at.button[0].click().run()
    at.text_input(key="patient_key").input(key)
    at.radio(key="page").set_value("Actions").run()
    at.selectbox(key="dec_choice").set_value("OTHER")  # decisions have no default (issue 32)
    at.text_area(key="dec_note").input("second opinion at the board")
    at.button(key="FormSubmitter:decision_form-Record decision").click().run()
    assert not at.exception, at.exception
    return at


def test_serve_starts_while_the_dashboard_runs_and_applies_its_queued_requests(
        archive: OrthancArchive, settings: Settings, prefect_home: Path,  # noqa: F811
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, files = write_study(tmp_path / "s1", patient_id="MRN-B1", study_date=date(2025, 1, 10), sequences=("T1c",))
    upload(archive, files)
    wait_stable(archive, 1)
    key = patient_key("MRN-B1", salt=settings.privacy.key_salt)
    password = add_user(settings.state_dir / "users.toml", name="dr.board", role="radiologist")
    opened: list[str] = []  # every database this process (the dashboard side) opens
    real_connect = duckdb.connect
    monkeypatch.setattr(duckdb, "connect", lambda database, *a, **kw: opened.append(str(database))
                        or real_connect(database, *a, **kw))
    port, log = free_port(), tmp_path / "dashboard.log"
    dashboard = start_dashboard(settings, port=port, log_path=log)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", dashboard, log, what="the dashboard", timeout_s=60.0)
        queued = submit(settings, BoardRequest(kind=RequestKind.RECORD_DECISION, user="dr.board", patient_key=key,
                                               payload={"decision": "OTHER", "note": "queued before serve"}))
        assert queued.writer == WriterState.NEVER and "wait in the queue" in queued.message
        assert not settings.db_path.exists(), "the dashboard side created the main store"

        service = WatcherProcess(watcher_env(settings, prefect_home), command="serve")
        try:
            service.wait_for(lambda: snapshot_count(settings, DECISIONS) == 1, timeout_s=240,
                             what="the decision queued before `serve` started to be applied")
            assert snapshot_count(settings) == 1, "the study was ingested in the same cycle"
            assert writer_status(settings).state == WriterState.RUNNING
            monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(settings.state_dir))
            monkeypatch.delenv("GLIOWATCH_CONFIG", raising=False)
            at = _record_decision_in_the_app("dr.board", password, key)
            assert any(i.value.startswith("Queued. The running pipeline applies") for i in at.info), \
                [i.value for i in at.info]
            service.wait_for(lambda: snapshot_count(settings, DECISIONS) == 2, timeout_s=60,
                             what="the decision sent from the dashboard while `serve` runs to be applied")
            service.wait_for(lambda: not pending_requests(requests_dir(settings.state_dir)), timeout_s=30,
                             what="the page views to be applied")
            at.run()
            assert not any("waiting for the pipeline" in i.value for i in [*at.info, *at.warning])
            assert service.alive() and service.count("Traceback") == 0, service.tail()
            assert str(settings.db_path) not in opened, "the dashboard side opened the main store"
            assert str(settings.snapshot_path) in opened, "the pages read the snapshot"
        finally:
            service.kill()
        assert writer_status(settings).state == WriterState.STOPPED, "a killed service reads as stopped"
        assert dashboard.poll() is None, "the dashboard kept running throughout"
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=15)
    applied = "SELECT count(*) FROM board_requests WHERE kind = 'RECORD_DECISION' AND status = 'APPLIED'"
    assert snapshot_count(settings, applied) == 2
    assert snapshot_count(settings, "SELECT count(*) FROM audit WHERE action = 'record_decision'") == 2
