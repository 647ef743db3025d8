"""Proof 3: a burst of studies uploaded at once -> all processed, none twice, memory reported.

The studies are uploaded to the real Orthanc (4 upload threads) before `gliowatch watch` starts,
so the watcher meets the whole burst in its change feed. Its RSS (and that of its process tree,
the ephemeral Prefect server included) is sampled every 0.2 s with psutil. Progress is read from
the snapshot the watcher publishes; at the end the watcher is killed and DuckDB is checked.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pytest
import requests

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    WatcherProcess,
    prefect_home,  # noqa: F401 - fixture
    snapshot_count,
    upload_raw,
    watcher_env,
)
from tests.support import write_reliability_summary

pytestmark = pytest.mark.integration
SEQUENCES = ("T1c", "FLAIR")  # small studies: 2 series of 16x16x4
SHAPE = (16, 16, 4)


def run_burst(settings: Settings, tmp_path: Path, prefect_home: Path, *, n_studies: int,  # noqa: F811
              timeout_s: float) -> dict:
    uids, files = [], []
    for i in range(n_studies):
        uid, f = write_study(tmp_path / f"s{i}", patient_id=f"MRN-B{i % 40}", sequences=SEQUENCES,
                             study_date=date(2023, 1, 1) + timedelta(days=i), shape=SHAPE, seed=i)
        uids.append(uid)
        files += f
    t_upload = time.monotonic()
    with requests.Session() as http, ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(lambda p: upload_raw(settings, p, http), files))
    upload_s = time.monotonic() - t_upload
    assert all(o.status == "Success" for o in outcomes)
    watcher = WatcherProcess(watcher_env(settings, prefect_home))
    t0 = time.monotonic()
    try:
        watcher.wait_for(lambda: snapshot_count(settings) >= n_studies, timeout_s=timeout_s,
                         what=f"{n_studies} studies in the snapshot", poll_s=0.5)
        all_done_s = time.monotonic() - t0
    finally:
        watcher.kill()
    with open_store(settings.db_path, read_only=True) as store:
        rows = store.query_dicts("SELECT study_uid, revision, status, seen_at, ingested_at FROM studies")
        n_series = store.query("SELECT count(*) FROM series")[0][0]
    stored = [r["study_uid"] for r in rows]
    assert sorted(stored) == sorted(uids), "a study is missing or extra"
    assert all(r["revision"] == 1 and r["status"] == "INGESTED" for r in rows), "a study was processed twice"
    assert n_series == len(SEQUENCES) * n_studies
    span_s = (max(r["ingested_at"] for r in rows) - min(r["seen_at"] for r in rows)).total_seconds()
    return {
        "studies": n_studies,
        "instances": len(files),
        "upload_s": round(upload_s, 1),
        "watcher_start_to_all_in_snapshot_s": round(all_done_s, 1),
        "first_seen_to_last_committed_s": round(span_s, 1),
        "studies_per_hour_processing": round(n_studies / span_s * 3600) if span_s > 0 else None,
        "peak_rss_watcher_mib": round(watcher.peak_rss_bytes / 2**20, 1),
        "peak_rss_watcher_tree_mib": round(watcher.peak_tree_rss_bytes / 2**20, 1),
        "revisions_above_1": 0,
    }


def test_burst_20_studies(archive: OrthancArchive, settings: Settings, tmp_path: Path,  # noqa: ARG001
                          prefect_home: Path, artifacts_dir: Path) -> None:  # noqa: F811
    summary = run_burst(settings, tmp_path, prefect_home, n_studies=20, timeout_s=240)
    write_reliability_summary(artifacts_dir, "burst-short.json", summary)
    assert summary["peak_rss_watcher_mib"] > 0


@pytest.mark.slow
def test_burst_200_studies(archive: OrthancArchive, settings: Settings, tmp_path: Path,  # noqa: ARG001
                           prefect_home: Path, artifacts_dir: Path) -> None:  # noqa: F811
    summary = run_burst(settings, tmp_path, prefect_home, n_studies=200, timeout_s=900)
    write_reliability_summary(artifacts_dir, "burst-slow.json", summary)
    assert summary["peak_rss_watcher_mib"] > 0
