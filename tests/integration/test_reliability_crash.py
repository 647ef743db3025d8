"""Proof 4: SIGKILL `gliowatch watch` at random moments, restart it, and lose or duplicate nothing.

Each cycle uploads a few new studies to the real Orthanc, starts the watcher as a real process
(its own session, so the ephemeral Prefect server dies with it) and SIGKILLs the process group at
a random moment: usually a random 0-0.8 s after the cycle's first ingested study (mid-stream),
sometimes a random 0-15 s after start (during Prefect's start-up or between polls). The first
kill comes at once after the first ingested study, so at least one kill meets work in flight. At the end one
`gliowatch watch --once` drains what is left; then every uploaded study is in DuckDB exactly once
(revision 1, all four series), and no process of the killed groups is left.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from datetime import date, timedelta
from pathlib import Path

import pytest

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    PROJECT_ROOT,
    WatcherProcess,
    gliowatch,
    prefect_home,  # noqa: F401 - fixture
    processes_in_group,
    watcher_env,
)
from tests.integration.test_stream import upload
from tests.support import write_reliability_summary

pytestmark = pytest.mark.integration
STUDIES_PER_CYCLE = 3


def run_crash_cycles(archive: OrthancArchive, settings: Settings, tmp_path: Path, prefect_home: Path,  # noqa: F811
                     *, cycles: int, seed: int) -> dict:
    rng = random.Random(seed)
    env = watcher_env(settings, prefect_home)
    uploaded: list[str] = []
    kills = []
    started = time.monotonic()
    for c in range(cycles):
        for j in range(STUDIES_PER_CYCLE):
            n = len(uploaded)
            uid, files = write_study(tmp_path / f"c{c}s{j}", patient_id=f"MRN-C{n % 5}",
                                     study_date=date(2024, 1, 1) + timedelta(days=n), seed=n)
            upload(archive, files)
            uploaded.append(uid)
        watcher = WatcherProcess(env)
        t0 = time.monotonic()
        mid_stream = rng.random() < 0.75 or c == 0  # the first kill always hits the stream at work
        try:
            if mid_stream:
                watcher.wait_for(lambda w=watcher: w.count("ingested patient") >= 1, timeout_s=180,
                                 what="the first ingested study of this run", poll_s=0.05)
                time.sleep(0.0 if c == 0 else rng.uniform(0.0, 0.8))
            else:
                time.sleep(rng.uniform(0.0, 15.0))
        except BaseException:  # a failure or pytest-timeout: leave no watcher running behind the test
            watcher.kill()
            raise
        ingested_before_kill = watcher.count("ingested patient")
        returncode = watcher.kill()
        assert returncode is not None and returncode < 0, watcher.tail()
        leftovers = processes_in_group(watcher.proc.pid)
        assert leftovers == [], f"processes of the killed group still alive: {leftovers}"
        with open_store(settings.db_path, read_only=True) as store:  # free again: the writer is dead
            stored_at_kill = store.query("SELECT count(*) FROM studies")[0][0]
        kills.append({"cycle": c, "mode": "after first ingest" if mid_stream else "random after start",
                      "killed_after_s": round(time.monotonic() - t0, 2),
                      "ingested_lines_before_kill": ingested_before_kill,
                      "stored_at_kill": stored_at_kill, "uploaded_at_kill": len(uploaded)})
    drain = subprocess.run(gliowatch("watch", "--once"), env=env, capture_output=True, text=True,  # noqa: S603
                           timeout=300, cwd=PROJECT_ROOT)
    assert drain.returncode == 0, drain.stdout[-2000:] + drain.stderr[-2000:]
    with open_store(settings.db_path, read_only=True) as store:
        rows = store.query_dicts("SELECT study_uid, revision, status FROM studies")
        n_series = store.query("SELECT count(*) FROM series")[0][0]
        n_volumes = store.query("SELECT count(*) FROM volumes")[0][0]
        n_quarantine = store.query("SELECT count(*) FROM quarantine")[0][0]
        paths = [r[0] for r in store.query("SELECT path FROM volumes")]
    stored = [r["study_uid"] for r in rows]
    lost = sorted(set(uploaded) - set(stored))
    assert lost == [], f"{len(lost)} studies lost"
    assert len(stored) == len(set(stored)) == len(uploaded), "a study is stored twice"
    assert [r for r in rows if r["revision"] != 1] == [], "a study was ingested more than once"
    assert all(r["status"] == "INGESTED" for r in rows)
    assert n_series == n_volumes == 4 * len(uploaded) and n_quarantine == 0
    assert all((settings.volumes_dir / p).exists() for p in paths)
    return {
        "cycles": cycles,
        "studies_uploaded": len(uploaded),
        "studies_stored": len(stored),
        "lost": len(lost),
        "revisions_above_1": 0,
        # with work pending: uploaded studies were still waiting when the watcher died;
        # mid-stream: in addition, this run had already ingested something
        "kills_with_work_pending": sum(k["stored_at_kill"] < k["uploaded_at_kill"] for k in kills),
        "kills_mid_stream": sum(k["ingested_lines_before_kill"] > 0 and k["stored_at_kill"] < k["uploaded_at_kill"]
                                for k in kills),
        "kills_before_this_run_ingested": sum(k["ingested_lines_before_kill"] == 0 for k in kills),
        "wall_s": round(time.monotonic() - started, 1),
        "kills": kills,
    }


def test_sigkill_3_cycles(archive: OrthancArchive, settings: Settings, tmp_path: Path,
                          prefect_home: Path, artifacts_dir: Path) -> None:  # noqa: F811
    summary = run_crash_cycles(archive, settings, tmp_path, prefect_home, cycles=3, seed=3)
    write_reliability_summary(artifacts_dir, "crash-short.json", summary, printed_without=("kills",))
    assert summary["kills_with_work_pending"] >= 1, "every kill came after the work was done"


@pytest.mark.slow
@pytest.mark.timeout(2400)  # ~13 min on a quiet 2-core VM (50 Prefect start-ups); 900 s was too tight under load
def test_sigkill_50_cycles(archive: OrthancArchive, settings: Settings, tmp_path: Path,
                           prefect_home: Path, artifacts_dir: Path) -> None:  # noqa: F811
    summary = run_crash_cycles(archive, settings, tmp_path, prefect_home, cycles=50, seed=50)
    write_reliability_summary(artifacts_dir, "crash-slow.json", summary, printed_without=("kills",))
    assert summary["kills_with_work_pending"] >= 25
