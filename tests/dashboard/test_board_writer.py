"""One writer, really: the dashboard only queues; the writer applies each request once, in order.

The dashboard side is exercised through its own code (``dashboard.board_queue`` and the app in
AppTest) while the main store is held for writing by another process, and with ``duckdb.connect``
watched; the writer side through ``apply_board_requests`` on a store opened, crashed and reopened.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.board_queue import queued_count, submit, waiting_actions, writer_status
from engine.store import open_store
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.board_requests import (
    BoardRequest,
    RequestKind,
    discard_stale_temporaries,
    failed_requests,
    pending_requests,
    requests_dir,
    write_request,
)
from engine.store.writer_presence import WriterState, announce_writer, record_cycle, withdraw_writer
from tests.dashboard.conftest import APP_PATH, log_in, open_page
from tests.dashboard.store_factory import Built


class _Crash(BaseException):
    """A writer dying mid-cycle (not an Exception: nothing in the writer may catch it)."""


def _decision(note: str, at: datetime | None = None) -> BoardRequest:
    extra = {"requested_at": at} if at else {}
    return BoardRequest(kind=RequestKind.RECORD_DECISION, user="dr.test", patient_key="P-ALERT",
                        payload={"decision": "OTHER", "note": note}, **extra)


def _rt_end(day: str, at: datetime) -> BoardRequest:
    return BoardRequest(kind=RequestKind.CORRECT_EVENT, user="dr.test", patient_key="P-ALERT",
                        payload={"event": "RT_END", "event_date": day, "note": "letter"}, requested_at=at)


@pytest.fixture
def main_store_held(built_state: Built) -> Iterator[None]:
    """Another process holds the main store for writing, as a running `serve` does."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " sys.stdin.read()", str(built_state.settings.db_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every database the code under test opens through duckdb.connect."""
    opened: list[str] = []
    real = duckdb.connect

    def spy(database: str = ":memory:", *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        opened.append(str(database))
        return real(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", spy)
    return opened


def test_the_dashboard_submits_and_renders_without_opening_the_main_store(
        built_state: Built, main_store_held: None, connects: list[str]) -> None:
    settings = built_state.settings
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.run()
    open_page(log_in(at), "Actions", "P-ALERT")
    at.selectbox(key="dec_choice").set_value("ADVANCED_IMAGING")
    at.text_area(key="dec_note").input("discuss perfusion")
    at.button(key="FormSubmitter:decision_form-Record decision").click().run()
    at.radio(key="page").set_value("Stream health").run()
    assert not at.exception, at.exception
    assert str(settings.db_path) not in connects, "the dashboard opened the main store"
    assert str(settings.snapshot_path) in connects, "the pages read the snapshot"
    assert [r.kind for r in waiting_actions(settings, "P-ALERT")] == [RequestKind.RECORD_DECISION]
    assert queued_count(settings) == 4  # + page views: worklist, actions, stream health


def test_without_a_writer_the_page_says_requests_wait_and_nothing_is_lost(built_state: Built) -> None:
    settings = built_state.settings
    assert writer_status(settings).state == WriterState.NEVER
    submitted = submit(settings, _decision("first"))
    assert submitted.writer == WriterState.NEVER and "wait in the queue" in submitted.message
    presence = announce_writer(settings.state_dir, poll_interval_s=5, now=datetime(2025, 6, 1, 12))
    assert writer_status(settings).state == WriterState.RUNNING  # this test's own process, alive
    assert "within one cycle" in submit(settings, _decision("second")).message
    withdraw_writer(settings.state_dir, presence)
    assert writer_status(settings).state == WriterState.NEVER
    with open_store(settings.db_path) as store:
        assert len(apply_board_requests(store, requests_dir(settings.state_dir)).applied) == 2


def test_a_killed_writer_reads_as_stopped(built_state: Built) -> None:
    state_dir = built_state.settings.state_dir
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    presence = announce_writer(state_dir, poll_interval_s=5, now=datetime(2025, 6, 1, 12))
    record_cycle(state_dir, presence, now=datetime(2025, 6, 1, 12, 1))
    text = (state_dir / "writer.json").read_text().replace(f'"pid": {os.getpid()}', f'"pid": {dead.stdout.strip()}')
    (state_dir / "writer.json").write_text(text)
    status = writer_status(built_state.settings)
    assert status.state == WriterState.STOPPED
    assert "No pipeline is running (the last one was seen 2025-06-01 12:01 UTC)" in status.message


def test_requests_are_applied_in_the_order_they_were_made(built_state: Built) -> None:
    folder = requests_dir(built_state.settings.state_dir)
    t0 = datetime(2025, 6, 1, 12)
    write_request(folder, _rt_end("2025-01-25", t0 + timedelta(seconds=2)))  # written first, made later
    write_request(folder, _rt_end("2025-01-19", t0 + timedelta(seconds=1)))
    with open_store(built_state.settings.db_path) as store:
        assert len(apply_board_requests(store, folder).applied) == 2
        assert store.query("SELECT event_date FROM clinical_events WHERE patient_key = 'P-ALERT' "
                           "AND event = 'RT_END'") == [(date(2025, 1, 25),)]


def test_a_writer_killed_between_commit_and_file_removal_applies_nothing_twice(
        built_state: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = built_state.settings
    folder = requests_dir(settings.state_dir)
    for note in ("one", "two", "three"):
        submit(settings, _decision(note))
    real_unlink = Path.unlink

    def crash_on_first_removal(self: Path, missing_ok: bool = False) -> None:
        if self.parent == folder and self.suffix == ".json":
            raise _Crash
        real_unlink(self, missing_ok=missing_ok)

    store = open_store(settings.db_path)
    monkeypatch.setattr(Path, "unlink", crash_on_first_removal)
    with pytest.raises(_Crash):
        apply_board_requests(store, folder)  # "one" is committed, its file stays
    monkeypatch.undo()
    store.close()
    assert len(pending_requests(folder)) == 3
    with open_store(settings.db_path) as store:  # the restarted writer
        result = apply_board_requests(store, folder)
        assert len(result.skipped) == 1 and len(result.applied) == 2 and not result.failed
        notes = store.query("SELECT note FROM board_decisions ORDER BY decision_id")
        audits = store.query("SELECT count(*) FROM audit WHERE action = 'record_decision'")[0][0]
    assert notes == [("one",), ("two",), ("three",)] and audits == 3
    assert pending_requests(folder) == []


def test_two_files_of_one_request_are_applied_once(built_state: Built) -> None:
    folder = requests_dir(built_state.settings.state_dir)
    path = write_request(folder, _decision("once"))
    shutil.copy(path, folder / f"0-{path.name}")  # e.g. restored from a backup under another name
    with open_store(built_state.settings.db_path) as store:
        result = apply_board_requests(store, folder)
        assert len(result.applied) == 1 and len(result.skipped) == 1
        assert store.query("SELECT count(*) FROM board_decisions")[0][0] == 1
    assert pending_requests(folder) == []


def test_a_refused_request_is_parked_with_its_reason_for_the_page(built_state: Built) -> None:
    folder = requests_dir(built_state.settings.state_dir)
    write_request(folder, BoardRequest(kind=RequestKind.ACKNOWLEDGE_ALERT, user="dr.test", patient_key="P-CALM",
                                       payload={"alert_id": str(built_state.alert_id), "note": ""}))
    (folder / "20250601T000000000000-garbage.json").write_text("{not json")
    with open_store(built_state.settings.db_path) as store:
        assert len(apply_board_requests(store, folder).failed) == 2
    [failure] = failed_requests(folder)  # the unreadable one has no request to show
    assert failure.request.patient_key == "P-CALM"
    assert failure.reason == f"Alert {built_state.alert_id} does not exist for this patient"


def test_half_written_requests_are_never_read_and_old_ones_are_swept(built_state: Built) -> None:
    folder = requests_dir(built_state.settings.state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".20250601T120000000000-x.json.1234abcd.tmp"
    tmp.write_text('{"kind": "PAGE_')  # a dashboard that died while writing
    assert pending_requests(folder) == []
    assert discard_stale_temporaries(folder) == 0  # may still be being written
    os.utime(tmp, (0, 0))
    with open_store(built_state.settings.db_path) as store:
        assert apply_board_requests(store, folder).applied == ()
    assert not tmp.exists()


def test_no_dashboard_module_names_the_main_store() -> None:
    """The static half: no page can reach ``settings.db_path`` (the snapshot is ``snapshot_path``)."""
    for path in sorted(APP_PATH.parent.glob("*.py")):
        names = {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
        assert "db_path" not in names, f"{path.name} names the main store"


def test_the_page_shows_the_writers_refusal_of_a_request_sent_from_it(built_state: Built) -> None:
    settings = built_state.settings
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.run()
    open_page(log_in(at), "Actions", "P-ALERT")
    at.button(key="FormSubmitter:ack_form-Acknowledge").click().run()
    assert any("1 request(s) waiting for the pipeline" in w.value for w in at.warning)
    earlier = BoardRequest(kind=RequestKind.ACKNOWLEDGE_ALERT, user="dr.other", patient_key="P-ALERT",
                           payload={"alert_id": str(built_state.alert_id), "note": "phoned"},
                           requested_at=datetime(2025, 6, 1, 12))
    write_request(requests_dir(settings.state_dir), earlier)  # another board member was quicker
    with open_store(settings.db_path) as store:
        assert len(apply_board_requests(store, requests_dir(settings.state_dir)).failed) == 1
    at.run()
    assert [e.value for e in at.error] == [f"Not applied: Alert {built_state.alert_id} was already acknowledged"]
    assert not any("waiting for the pipeline" in w.value for w in at.warning)
    at.run()
    assert not at.error, "said once"
