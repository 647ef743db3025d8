"""The watcher as a real process: `gliowatch watch` through Prefect, killed with SIGKILL mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

import pytest

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    gliowatch,
    prefect_home,  # noqa: F401 - fixture
    watcher_env,
)
from tests.integration.test_stream import upload, wait_stable

pytestmark = pytest.mark.integration
N_STUDIES = 6


def test_sigkill_mid_stream_loses_and_duplicates_nothing(archive: OrthancArchive, settings: Settings, prefect_home: Path,  # noqa: F811
                                                         tmp_path: Path) -> None:
    uids = []
    for i in range(N_STUDIES):
        uid, files = write_study(tmp_path / f"s{i}", patient_id=f"MRN-K{i % 2}",
                                 study_date=date(2025, 1, 1 + i), shape=(32, 32, 24), seed=i)
        upload(archive, files)
        uids.append(uid)
    wait_stable(archive, N_STUDIES)
    env = watcher_env(settings, prefect_home)
    proc = subprocess.Popen(gliowatch("watch"), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    deadline = time.monotonic() + 240
    killed_after = None
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "ingested patient" in line:
                killed_after = line.strip()
                break
            if time.monotonic() > deadline:
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the watcher and its ephemeral Prefect server
        proc.wait(timeout=30)
    assert killed_after, "the watcher never ingested a study before the deadline"
    assert proc.returncode == -signal.SIGKILL
    with open_store(settings.db_path, read_only=True) as store:
        before = store.query("SELECT count(*) FROM studies")[0][0]
    assert before < N_STUDIES, "the kill came after the whole stream was done: not a mid-stream kill"
    done = subprocess.run(gliowatch("watch", "--once"), env=env, capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    with open_store(settings.db_path, read_only=True) as store:
        rows = store.query_dicts("SELECT study_uid, revision, status FROM studies")
        assert sorted(r["study_uid"] for r in rows) == sorted(uids)
        assert all(r["revision"] == 1 and r["status"] == "INGESTED" for r in rows)
        assert store.query("SELECT count(*) FROM quarantine")[0][0] == 0
        n_series = store.query("SELECT count(*) FROM series")[0][0]
        assert n_series == 4 * N_STUDIES
    assert settings.snapshot_path.exists()
