"""The Stream health page shows the stream's progress from the snapshot: while studies still wait
for a pipeline step it says how many of those received are through, and it moves on when the
writer publishes a newer snapshot."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard.stream import progress
from engine.store import open_store, publish_snapshot
from engine.store import ingest as sql
from engine.types import StudyStatus
from tests.dashboard.conftest import APP_PATH, log_in, open_page
from tests.dashboard.store_factory import RADIOLOGIST, Built


def _progress_text(at: AppTest) -> str:
    (bar,) = [e for e in at.get("progress")]
    return bar.proto.text


def test_progress_counts_studies_before_all_are_done(built_state: Built) -> None:
    settings = built_state.settings
    with open_store(settings.db_path) as store:
        before = progress(sql.stream_health(store)["studies_by_status"])
        uid = store.query("SELECT study_uid FROM studies WHERE status = 'ASSESSED' ORDER BY study_uid")[0][0]
        with store.transaction() as con:  # one study back to waiting for its segmentation
            sql.set_study_status(con, uid, StudyStatus.INGESTED)
        publish_snapshot(store, settings.snapshot_path)
    done, total = before
    assert total >= 2 and done == total, before
    at = AppTest.from_file(str(APP_PATH), default_timeout=60)
    at.run()
    open_page(log_in(at, *RADIOLOGIST), "Stream health", "")
    assert not at.exception, at.exception
    assert _progress_text(at).startswith(f"{done - 1} of {total} studies received are through the pipeline")
    assert "1 waiting for a pipeline step" in _progress_text(at)
    with open_store(settings.db_path) as store:  # the writer finishes it and publishes
        with store.transaction() as con:
            sql.set_study_status(con, uid, StudyStatus.ASSESSED)
        publish_snapshot(store, settings.snapshot_path)
    at.run()
    assert _progress_text(at).startswith(f"{done} of {total} studies received are through the pipeline")


def test_progress_of_an_empty_stream() -> None:
    assert progress({}) == (0, 0)
    assert progress({"ASSESSED": 3, "QUARANTINED": 1, "INGESTED": 2}) == (4, 6)
