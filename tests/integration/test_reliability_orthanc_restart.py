"""Proof 2: Orthanc stopped and restarted mid-stream while `gliowatch watch` runs.

This test starts its own Orthanc (free ports, its own data) so stopping it cannot disturb the
other tests. Studies uploaded before the stop are ingested; Orthanc is stopped with
``engine.orthanc_server.stop``; the watcher must notice (it logs that the cycle failed and will
retry) and stay alive through the downtime; Orthanc is started again on the same data with
``engine.orthanc_server.start``; more studies are uploaded; every study ends up in DuckDB exactly
once (revision 1).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from engine import orthanc_server
from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    WatcherProcess,
    prefect_home,  # noqa: F401 - fixture
    snapshot_count,
    watcher_env,
)
from tests.integration.test_stream import upload
from tests.support import free_port, make_settings, write_reliability_summary

pytestmark = pytest.mark.integration
PER_BATCH = 3
RETRY_LINE = "cycle failed"  # the watch loop logs "cycle failed, retrying in N s: ..."


@pytest.fixture
def own_orthanc(tmp_path: Path) -> Iterator[tuple[Settings, orthanc_server.OrthancPaths]]:
    settings = make_settings(tmp_path / "orthanc-state", free_port())
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    orthanc_server.start(settings.orthanc, paths, password=settings.orthanc.password)
    yield settings, paths
    orthanc_server.stop(paths)


def run_restart(own: tuple[Settings, orthanc_server.OrthancPaths], tmp_path: Path, prefect_home: Path,  # noqa: F811
                *, down_s: float) -> dict:
    orthanc_settings, paths = own
    archive = OrthancArchive(orthanc_settings.orthanc.url, username=orthanc_settings.orthanc.username,
                             password=orthanc_settings.orthanc.password)
    settings = make_settings(tmp_path / "state", orthanc_settings.orthanc.http_port)
    uids: list[str] = []

    def upload_batch(tag: str) -> None:
        for j in range(PER_BATCH):
            n = len(uids)
            uid, files = write_study(tmp_path / f"{tag}{j}", patient_id=f"MRN-R{n % 2}",
                                     study_date=date(2024, 6, 1) + timedelta(days=n), seed=n)
            upload(archive, files)
            uids.append(uid)

    upload_batch("before")
    watcher = WatcherProcess(watcher_env(settings, prefect_home))
    try:
        watcher.wait_for(lambda: snapshot_count(settings) >= PER_BATCH, timeout_s=240,
                         what="the first batch in the snapshot")
        retries_before = watcher.count(RETRY_LINE)
        t_stop = time.monotonic()
        orthanc_server.stop(paths)
        watcher.wait_for(lambda: watcher.count(RETRY_LINE) > retries_before, timeout_s=120,
                         what="the watcher to notice that Orthanc is down")
        remaining = down_s - (time.monotonic() - t_stop)
        if remaining > 0:
            time.sleep(remaining)  # the downtime itself: nothing to poll for
        assert watcher.alive(), watcher.tail()
        failed_cycles = watcher.count(RETRY_LINE) - retries_before
        downtime_s = time.monotonic() - t_stop
        orthanc_server.start(orthanc_settings.orthanc, paths, password=orthanc_settings.orthanc.password)
        t_back = time.monotonic()
        upload_batch("after")
        watcher.wait_for(lambda: snapshot_count(settings) >= len(uids), timeout_s=240,
                         what="every study in the snapshot after the restart")
        catch_up_s = time.monotonic() - t_back
    finally:
        watcher.kill()
    with open_store(settings.db_path, read_only=True) as store:
        rows = store.query_dicts("SELECT study_uid, revision, status FROM studies")
        n_series = store.query("SELECT count(*) FROM series")[0][0]
        errors = store.query("SELECT count(*) FROM stream_log WHERE kind = 'error'")[0][0]
    assert sorted(r["study_uid"] for r in rows) == sorted(uids)
    assert all(r["revision"] == 1 and r["status"] == "INGESTED" for r in rows)
    assert n_series == 4 * len(uids)
    return {"orthanc_down_s": round(downtime_s, 1), "failed_cycles_logged": failed_cycles,
            "errors_in_stream_log": errors, "studies": len(uids),
            "restart_to_all_ingested_s": round(catch_up_s, 1), "revisions_above_1": 0}


def test_orthanc_down_10_s(own_orthanc: tuple[Settings, orthanc_server.OrthancPaths], tmp_path: Path,
                           prefect_home: Path, artifacts_dir: Path) -> None:  # noqa: F811
    summary = run_restart(own_orthanc, tmp_path, prefect_home, down_s=10)
    write_reliability_summary(artifacts_dir, "orthanc-restart-short.json", summary)
    assert summary["failed_cycles_logged"] >= 1


@pytest.mark.slow
def test_orthanc_down_5_min(own_orthanc: tuple[Settings, orthanc_server.OrthancPaths], tmp_path: Path,
                            prefect_home: Path, artifacts_dir: Path) -> None:  # noqa: F811
    summary = run_restart(own_orthanc, tmp_path, prefect_home, down_s=300)
    write_reliability_summary(artifacts_dir, "orthanc-restart-slow.json", summary)
    assert summary["failed_cycles_logged"] >= 1
