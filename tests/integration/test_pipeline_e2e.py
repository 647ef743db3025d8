"""End to end on a synthetic patient: Orthanc -> ingest -> MONAI segmentation (shipped model) ->
registration to baseline -> RANO assessment -> alert outbox, through the real Prefect flow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from engine.modelling.synth import generate_cohort
from engine.modelling.synth.cohort import upload_in_visit_order
from flows.prefect_env import configure_prefect
from tests.integration.test_stream import wait_stable

pytestmark = pytest.mark.integration


def test_synthetic_progression_patient_end_to_end(archive: OrthancArchive, settings: Settings,
                                                  tmp_path: Path) -> None:
    manifest_path = generate_cohort(n_patients=1, seed=5, out_dir=tmp_path / "cohort", size="test",
                                    n_visits=4, scenarios=["progression"])
    manifest = json.loads(manifest_path.read_text())
    n_studies = len(manifest["patients"][0]["visits"])
    configure_prefect(settings)
    from flows.cmd_events import import_events
    from flows.runtime import build_runtime
    from flows.watch import watch_cycle

    rt = build_runtime(settings, archive=archive)
    try:
        n_events, n_patients, errors = import_events(rt.store, tmp_path / "cohort" / "clinical_events.csv",
                                                     key_salt=rt.key_salt, entered_by="test")
        assert n_events > 0 and n_patients == 1 and errors == []
        upload_in_visit_order(manifest_path, archive)
        wait_stable(archive, n_studies)
        report = watch_cycle(rt, reconcile=True)
        assert len(report.ingested) == n_studies
        store = rt.store
        statuses = dict(store.query("SELECT study_uid, status FROM studies"))
        assert set(statuses.values()) <= {"ASSESSED", "QUARANTINED"}, statuses
        assert list(statuses.values()).count("ASSESSED") >= 3
        seg = store.query_dicts("SELECT * FROM segmentations WHERE NOT superseded")
        assert len(seg) == n_studies and all(r["model_name"] for r in seg)
        regs = store.query_dicts("SELECT * FROM registrations WHERE kind = 'baseline' AND NOT superseded")
        assert len(regs) >= 3
        timeline = store.query_dicts("SELECT * FROM timeline ORDER BY scan_date")
        assert len(timeline) >= 3
        responses = [r["response"] for r in timeline]
        assert "BASELINE" in responses and all(r["reason"] for r in timeline)
        assert all(r["model_name"] for r in store.query_dicts("SELECT model_name FROM measurements"))
    finally:
        rt.close()
    with open_store(settings.snapshot_path, read_only=True) as snap:
        assert snap.query("SELECT count(*) FROM timeline")[0][0] >= 3
