"""The snapshot is published when the store changed, and only then."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from engine.store import Store, open_store, publish_snapshot
from engine.store import ingest as ingest_sql
from engine.store.board_requests import BoardRequest, RequestKind, write_request
from engine.usecases.apply_board_request import apply_board_requests
from engine.store.db import insert_frame
from engine.store.snapshot import copy_snapshot, stale_reason
from tests.support import file_identity

NOW = datetime(2025, 6, 1, 12, 0)


def _snapshot_rows(path: Path, sql: str) -> list[tuple]:
    with open_store(path, read_only=True) as snapshot:
        return snapshot.query(sql)


def _add_alert(store: Store, key: str) -> None:
    with store.transaction() as con:
        con.execute("""INSERT INTO alerts (idempotency_key, alert_type, severity, patient_key, study_uid, reason,
                           link, criteria, created_at) VALUES (?, 'ALERT_PPD', 'WARNING', 'P-0001', '1.1',
                           'SPD +40 %', '/?patient=P-0001', 'RANO 2.0, criteria v1', ?)""", [key, NOW])


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[Store, Path]]:
    store = open_store(tmp_path / "gliowatch.duckdb")
    snapshot = tmp_path / "gliowatch.snapshot.duckdb"
    _add_alert(store, "k1")
    first = publish_snapshot(store, snapshot)
    assert first.published and first.reason == "no snapshot yet"
    yield store, snapshot
    store.close()


def test_an_unchanged_store_is_not_published_again(published: tuple[Store, Path]) -> None:
    store, snapshot = published
    before = file_identity(snapshot)
    for _ in range(3):
        result = publish_snapshot(store, snapshot)
        assert not result.published, result.reason
        assert result.reason.startswith("unchanged")
    assert file_identity(snapshot) == before
    assert stale_reason(store, snapshot) is None


def test_a_change_is_published(published: tuple[Store, Path]) -> None:
    store, snapshot = published
    before = file_identity(snapshot)
    _add_alert(store, "k2")
    assert stale_reason(store, snapshot) is not None
    result = publish_snapshot(store, snapshot)
    assert result.published and result.reason.startswith("changed (revision")
    assert file_identity(snapshot) != before
    assert _snapshot_rows(snapshot, "SELECT idempotency_key FROM alerts ORDER BY 1") == [("k1",), ("k2",)]
    assert not publish_snapshot(store, snapshot).published  # and then it is current again


def test_an_update_is_a_change(published: tuple[Store, Path]) -> None:
    store, snapshot = published
    with store.transaction() as con:
        con.execute("UPDATE alerts SET acknowledged_by = 'dr.test', acknowledged_at = ?", [NOW])
    assert publish_snapshot(store, snapshot).published
    assert _snapshot_rows(snapshot, "SELECT acknowledged_by FROM alerts") == [("dr.test",)]


def test_a_rolled_back_transaction_is_no_change(published: tuple[Store, Path]) -> None:
    store, snapshot = published
    with pytest.raises(RuntimeError, match="abandoned"), store.transaction() as con:
        con.execute("DELETE FROM alerts")
        raise RuntimeError("abandoned")
    assert not publish_snapshot(store, snapshot).published
    assert _snapshot_rows(snapshot, "SELECT count(*) FROM alerts") == [(1,)]


def test_the_cycle_log_line_alone_does_not_publish_but_rides_with_the_next_change(
        published: tuple[Store, Path]) -> None:
    store, snapshot = published
    before = file_identity(snapshot)
    with store.transaction(visible=False) as con:  # as flows.watch logs every cycle
        ingest_sql.log_event(con, "cycle", "cursor 0 -> 0: 0 stable studies")
    assert not publish_snapshot(store, snapshot).published
    assert file_identity(snapshot) == before
    with store.transaction() as con:
        ingest_sql.log_event(con, "error", "Orthanc did not answer")
    assert publish_snapshot(store, snapshot).published
    assert _snapshot_rows(snapshot, "SELECT kind FROM stream_log ORDER BY logged_at") == [("cycle",), ("error",)]


def test_a_write_outside_a_transaction_is_still_published(published: tuple[Store, Path]) -> None:
    store, snapshot = published
    store.con.execute("DELETE FROM alerts")  # autocommit: the revision does not see it, the files do
    result = publish_snapshot(store, snapshot)
    assert result.published
    assert _snapshot_rows(snapshot, "SELECT count(*) FROM alerts") == [(0,)]
    assert not publish_snapshot(store, snapshot).published


def test_a_restarted_writer_reads_the_snapshot_revision_and_publishes_only_changes(tmp_path: Path) -> None:
    path, snapshot = tmp_path / "gliowatch.duckdb", tmp_path / "gliowatch.snapshot.duckdb"
    with open_store(path) as store:
        _add_alert(store, "k1")
        assert publish_snapshot(store, snapshot).published
    before = file_identity(snapshot)
    with open_store(path) as store:  # a new process: nothing remembered, the snapshot is read once
        assert not publish_snapshot(store, snapshot).published
        assert file_identity(snapshot) == before
        _add_alert(store, "k2")
        assert publish_snapshot(store, snapshot).published


def test_a_missing_or_foreign_or_unreadable_snapshot_is_replaced(published: tuple[Store, Path], tmp_path: Path) -> None:
    store, snapshot = published
    snapshot.unlink()
    assert publish_snapshot(store, snapshot).reason == "no snapshot yet"
    with open_store(tmp_path / "other.duckdb") as other:  # same revision number, another store
        copy_snapshot(other, snapshot)
    assert publish_snapshot(store, snapshot).reason == "the snapshot is of another store"
    snapshot.write_bytes(b"not a duckdb file")
    assert publish_snapshot(store, snapshot).published
    assert _snapshot_rows(snapshot, "SELECT idempotency_key FROM alerts") == [("k1",)]


def test_a_page_view_does_not_publish_an_acknowledgement_does(published: tuple[Store, Path], tmp_path: Path) -> None:
    store, snapshot = published
    requests = tmp_path / "requests"
    before = file_identity(snapshot)
    write_request(requests, BoardRequest(kind=RequestKind.PAGE_VIEW, user="dr.test", patient_key="P-0001",
                                         payload={"page": "Worklist"}))
    assert len(apply_board_requests(store, requests).applied) == 1
    assert not publish_snapshot(store, snapshot).published
    assert file_identity(snapshot) == before
    alert_id = store.query("SELECT alert_id FROM alerts")[0][0]
    write_request(requests, BoardRequest(kind=RequestKind.ACKNOWLEDGE_ALERT, user="dr.test", patient_key="P-0001",
                                         payload={"alert_id": str(alert_id), "note": "seen"}))
    assert len(apply_board_requests(store, requests).applied) == 1
    assert publish_snapshot(store, snapshot).published
    assert _snapshot_rows(snapshot, "SELECT acknowledged_by FROM alerts") == [("dr.test",)]


def test_an_in_memory_store_cannot_publish(tmp_path: Path) -> None:
    with open_store(None) as store, pytest.raises(ValueError, match="Argument 'store' must be file-backed"):
        publish_snapshot(store, tmp_path / "snapshot.duckdb")


def test_the_snapshot_is_a_consistent_copy_readers_can_open(published: tuple[Store, Path]) -> None:
    _, snapshot = published
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1


def test_a_bulk_insert_from_a_frame_is_a_change(published: tuple[Store, Path]) -> None:
    store, snapshot = published
    frame = pd.DataFrame({"patient_key": ["P-0002", "P-0003"], "first_seen_at": [NOW, NOW]})
    with store.transaction() as con:
        insert_frame(con, "patients", frame)
        insert_frame(con, "patients", pa.table({"patient_key": ["P-0004"], "first_seen_at": [NOW]}))
    assert publish_snapshot(store, snapshot).published
    assert _snapshot_rows(snapshot, "SELECT patient_key FROM patients ORDER BY 1") == [
        ("P-0002",), ("P-0003",), ("P-0004",)]
