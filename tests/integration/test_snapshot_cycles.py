"""Through the real watch flow: a cycle that changes nothing leaves the snapshot as it was."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from flows.prefect_env import configure_prefect
from tests.dicom_factory import write_study
from tests.integration.test_stream import upload, wait_stable
from tests.support import file_identity, make_settings

pytestmark = pytest.mark.integration


def test_idle_cycles_do_not_republish_the_snapshot_a_new_study_does(
        archive: OrthancArchive, settings: Settings, tmp_path: Path) -> None:
    settings = make_settings(settings.state_dir, settings.orthanc.http_port,
                             GLIOWATCH_SEGMENTATION__ENABLED="false", GLIOWATCH_REGISTRATION__ENABLED="false")
    configure_prefect(settings)
    from flows.runtime import build_runtime
    from flows.watch import watch_cycle

    _, files = write_study(tmp_path / "v1", patient_id="MRN-S1", study_date=date(2025, 1, 10), sequences=("T1c",))
    upload(archive, files)
    wait_stable(archive, 1)
    rt = build_runtime(settings, archive=archive)
    try:
        assert len(watch_cycle(rt).ingested) == 1
        first = file_identity(settings.snapshot_path)
        for reconcile in (False, True, False):  # idle cycles, one with the reconciliation sweep
            assert watch_cycle(rt, reconcile=reconcile).ingested == []
            assert file_identity(settings.snapshot_path) == first, f"idle cycle (reconcile={reconcile}) republished"
        _, files = write_study(tmp_path / "v2", patient_id="MRN-S1", study_date=date(2025, 3, 14), seed=9,
                               sequences=("T1c",))
        upload(archive, files)
        wait_stable(archive, 2)
        assert len(watch_cycle(rt).ingested) == 1
        assert file_identity(settings.snapshot_path) != first
    finally:
        rt.close()
    with open_store(settings.snapshot_path, read_only=True) as snap:
        assert snap.query("SELECT count(*) FROM studies")[0][0] == 2
        assert snap.query("SELECT count(*) FROM stream_log WHERE kind = 'cycle'")[0][0] >= 4
