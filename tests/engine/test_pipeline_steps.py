"""Pipeline steps against a real DuckDB file: a failed registration is quarantined, never used."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np

from engine.ingest import IngestedStudy
from engine.pipeline import RegistrationJob, RegistrationOutput, StudyFiles, commit_registration
from engine.registration import SimpleItkRegistrar
from engine.registration.phantom import load_template
from engine.store import open_store
from engine.store import ingest as ingest_sql
from engine.types import Volume


def _study(uid: str, day: int) -> IngestedStudy:
    return IngestedStudy(archive_study_id=f"a-{uid}", study_uid=uid, patient_key="P-TEST",
                         study_date=date(2025, 1, day), series=())


def test_failed_registration_quarantines_the_study_and_records_the_qc(tmp_path: Path) -> None:
    template = load_template(spacing_mm=4.0)
    rng = np.random.default_rng(4)
    noise = Volume(array=rng.random(template.image.array.shape).astype(np.float32), affine=template.image.affine)
    result = SimpleItkRegistrar().register(fixed=template.image, moving=noise)
    assert not result.passed
    with open_store(tmp_path / "g.duckdb") as store:
        with store.transaction() as con:
            for uid, day in (("1.1", 1), ("1.2", 20)):
                ingest_sql.record_study(con, _study(uid, day), change_seq=None, seen_at=datetime(2025, 1, 1))
        moving = StudyFiles("1.2", "P-TEST", "patient P-TEST, MRI 2025-01-20", {})
        fixed = StudyFiles("1.1", "P-TEST", "patient P-TEST, MRI 2025-01-01", {})
        outcome = commit_registration(store, RegistrationJob(moving, fixed, "baseline"),
                                      RegistrationOutput("1.2", "baseline", "1.1", result=result))
        assert not outcome.ok and "FAILED" in outcome.message
        assert ingest_sql.known_study(store, "1.2")["status"] == "QUARANTINED"
        q = store.query_dicts("SELECT * FROM quarantine WHERE study_uid = '1.2'")
        assert len(q) == 1 and q[0]["stage"] == "registration"
        assert "quality check" in q[0]["reason"] and "MRI 2025-01-20" in q[0]["reason"]
        reg = store.query_dicts("SELECT * FROM registrations WHERE study_uid = '1.2'")
        assert len(reg) == 1 and reg[0]["passed"] is False and reg[0]["qc_reason"] == result.qc_reason
