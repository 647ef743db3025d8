"""The ingestion stream against the real Orthanc and a real DuckDB file."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pytest

from engine.archive.orthanc import OrthancArchive
from engine.ingest import ingest_study
from engine.pseudonym import patient_key
from engine.series_rules import load_series_rules
from engine.settings import Settings
from engine.store import open_store
from engine.store import ingest as sql
from engine.usecases.follow_archive import run_cycle
from tests.dicom_factory import write_series, write_study

pytestmark = pytest.mark.integration


def upload(archive: OrthancArchive, files: list[Path]) -> None:
    for f in files:
        archive.upload_file(f)


def wait_stable(archive: OrthancArchive, n_studies: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stable = {c.resource_id for c in archive.changes(since=0, limit=10000).changes
                  if c.change_type == "StableStudy"}
        if len(stable) >= n_studies:
            return
        time.sleep(0.2)
    pytest.fail(f"Orthanc did not report {n_studies} stable studies within {timeout_s} s")


def cycle(archive: OrthancArchive, settings: Settings, store, reconcile: bool = False):  # noqa: ANN001, ANN201
    rules = load_series_rules(settings.series_rules)
    return run_cycle(
        archive=archive, store=store, reconcile=reconcile,
        ingest=lambda sid: ingest_study(archive, sid, rules=rules, volumes_dir=settings.volumes_dir,
                                        key_salt=settings.privacy.key_salt),
    )


def test_two_visits_ingested_once_and_linked(archive: OrthancArchive, settings: Settings, tmp_path: Path) -> None:
    uid1, f1 = write_study(tmp_path / "v1", patient_id="MRN-1", study_date=date(2025, 1, 10))
    uid2, f2 = write_study(tmp_path / "v2", patient_id="MRN-1", study_date=date(2025, 3, 14), seed=9)
    upload(archive, f2)  # uploaded out of visit order on purpose
    upload(archive, f1)
    wait_stable(archive, 2)
    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store)
        assert sorted(report.ingested) == sorted([uid1, uid2])
        again = cycle(archive, settings, store, reconcile=True)
        assert again.ingested == [] and again.reconciled == 0
        rows = store.query_dicts("SELECT * FROM studies ORDER BY study_date")
        assert [r["study_uid"] for r in rows] == [uid1, uid2]
        assert all(r["revision"] == 1 and r["status"] == "INGESTED" for r in rows)
        assert rows[0]["sequences"] == "T1,T1c,T2,FLAIR"
        assert rows[1]["previous_study_uid"] == uid1 and rows[0]["previous_study_uid"] is None
        key = patient_key("MRN-1", salt=settings.privacy.key_salt)
        assert {r["patient_key"] for r in rows} == {key}
        vols = store.query_dicts("SELECT * FROM volumes WHERE study_uid = ?", [uid1])
        assert {v["sequence"] for v in vols} == {"T1", "T1c", "T2", "FLAIR"}
        for v in vols:
            assert (settings.volumes_dir / v["path"]).exists()
        assert report.cursor_after > 0 and sql.get_cursor(store) == report.cursor_after


def test_bad_series_quarantined_stream_continues(archive: OrthancArchive, settings: Settings, tmp_path: Path) -> None:
    uid, files = write_study(tmp_path / "v1", patient_id="MRN-2", study_date=date(2025, 2, 1),
                             sequences=("T1", "T1c", "T2"))
    # a FLAIR series with a missing slice: refused with the series named, the study still ingested
    flair = write_series(tmp_path / "v1" / "FLAIR", sequence="FLAIR", patient_id="MRN-2",
                         study_uid=uid, study_date=date(2025, 2, 1))
    flair[3].unlink()
    bad_uid, bad = write_study(tmp_path / "v2", patient_id="MRN-3", study_date=date(2025, 2, 2),
                               sequences=("T1c",))
    bad[2].unlink()
    upload(archive, files + [f for f in flair if f.exists()] + [f for f in bad if f.exists()])
    wait_stable(archive, 2)
    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store)
        assert report.ingested == [uid] and report.quarantined == [bad_uid]
        study = sql.known_study(store, uid)
        assert study["status"] == "INGESTED" and study["missing_sequences"] == "FLAIR"
        q = store.query_dicts("SELECT * FROM quarantine ORDER BY quarantine_id")
        assert len(q) == 3  # the FLAIR series, the single T1c series, and the T1c-less study
        assert "AX T2 FLAIR" in q[0]["reason"]
        assert q[-1]["study_uid"] == bad_uid and "No usable" in q[-1]["reason"]
        assert sql.known_study(store, bad_uid)["status"] == "QUARANTINED"


def test_reconciliation_finds_studies_whose_changes_vanished(archive: OrthancArchive, settings: Settings,
                                                             tmp_path: Path) -> None:
    uid, files = write_study(tmp_path / "v1", patient_id="MRN-4", study_date=date(2025, 5, 5),
                             sequences=("T1c",))
    upload(archive, files)
    wait_stable(archive, 1)
    with open_store(settings.db_path) as store:
        with store.transaction() as con:  # pretend the feed moved past the study's change rows
            sql.set_cursor(con, archive.last_change())
        assert cycle(archive, settings, store).ingested == []
        report = cycle(archive, settings, store, reconcile=True)
        assert report.reconciled == 1 and report.ingested == [uid]
        assert sql.known_study(store, uid)["change_seq"] is None


def test_status_shows_cursor_lag_queue_and_patients(archive: OrthancArchive, settings: Settings, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    uid, files = write_study(tmp_path / "v1", patient_id="MRN-5", study_date=date(2025, 6, 1), sequences=("T1c",))
    upload(archive, files)
    wait_stable(archive, 1)
    with open_store(settings.db_path) as store:
        cycle(archive, settings, store)
    for name, value in {"GLIOWATCH_STATE_DIR": str(settings.state_dir),
                        "GLIOWATCH_ORTHANC__HTTP_PORT": str(settings.orthanc.http_port),
                        "GLIOWATCH_ORTHANC__PASSWORD": settings.orthanc.password}.items():
        monkeypatch.setenv(name, value)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "lag 0 changes" in out and "1 studies waiting for a pipeline step" in out
    assert patient_key("MRN-5", salt=settings.privacy.key_salt) in out and "MRN-5" not in out
    assert "2025-06-01  INGESTED     T1c (missing T1,T2,FLAIR)" in out


def test_sweeps_leave_a_study_still_arriving_to_its_stable_change(tmp_path: Path) -> None:
    """Reconciliation and backfill must not ingest a study whose instances are still arriving
    (found by the latency benchmark: a sweep took a study 0.5 s before its last instance)."""
    from engine import orthanc_server
    from engine.usecases.follow_archive import run_backfill
    from tests.support import free_port, make_settings

    settings = make_settings(tmp_path / "state", free_port(), GLIOWATCH_ORTHANC__STABLE_AGE_S="15")
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    orthanc_server.start(settings.orthanc, paths, password=settings.orthanc.password)
    try:
        archive = OrthancArchive(settings.orthanc.url, username=settings.orthanc.username,
                                 password=settings.orthanc.password)
        uid, files = write_study(tmp_path / "v1", patient_id="MRN-6", study_date=date(2025, 7, 1), sequences=("T1c",))
        upload(archive, files)
        [study_id] = archive.list_studies()
        assert archive.study(study_id).is_stable is False  # StableAge 15 s has not passed
        rules = load_series_rules(settings.series_rules)
        ingest = lambda sid: ingest_study(archive, sid, rules=rules, volumes_dir=settings.volumes_dir,  # noqa: E731
                                          key_salt=settings.privacy.key_salt)
        with open_store(settings.db_path) as store:
            swept = run_cycle(archive=archive, store=store, ingest=ingest, reconcile=True)
            assert swept.ingested == [] and swept.reconciled == 0 and swept.not_yet_stable == 1
            assert "1 not yet stable" in swept.summary()
            backfilled = run_backfill(archive=archive, store=store, ingest=ingest)
            assert backfilled.ingested == [] and backfilled.not_yet_stable == 1
            wait_stable(archive, 1, timeout_s=60)
            assert archive.study(study_id).is_stable is True
            report = run_cycle(archive=archive, store=store, ingest=ingest, reconcile=True)
            assert report.ingested == [uid] and report.reconciled == 0
            assert sql.known_study(store, uid)["change_seq"] is not None  # came by its StableStudy change
    finally:
        orthanc_server.stop(paths)
