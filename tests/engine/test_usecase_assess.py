"""The ``assess_patient`` use case over a real store: a patient whose assessment fails has its
waiting studies quarantined with a reason naming the file, and the next patient is assessed; a
broken criteria profile stops the caller (every patient would fail the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.state_paths import StatePaths
from engine.store import open_store
from engine.usecases.assess_patient import AssessmentPolicy, assess_patients
from tests.course_factory import PATIENT, add_study, record_rt_end, study_uid


def test_a_failed_patient_is_quarantined_and_the_stream_goes_on(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    policy = AssessmentPolicy(profile="rano2", mode="2d", paths=paths, alert_sinks=("dashboard",), base_url="http://x")
    with open_store(tmp_path / "g.duckdb") as store:
        record_rt_end(store)
        for t in range(2):
            add_study(store, paths, t, baseline_uid=None if t == 0 else study_uid(0))
        (paths.labels_dir / PATIENT / study_uid(1) / "labels.nii.gz").unlink()  # lost from the shared disk
        reports = assess_patients([PATIENT, "P-NOBODY"], store=store, policy=policy)
        assert [r.patient_key for r in reports] == ["P-NOBODY"]  # the next patient was assessed
        statuses = dict(store.query("SELECT study_uid, status FROM studies"))
        assert statuses == {study_uid(0): "QUARANTINED", study_uid(1): "QUARANTINED"}
        (stage, reason), = set(store.query("SELECT stage, reason FROM quarantine"))
        assert stage == "assessment" and "labels.nii.gz" in reason
        with pytest.raises(ConfigError, match="Unknown criteria profile"):
            assess_patients(["P-NOBODY"], store=store, policy=AssessmentPolicy(
                profile="rano9", mode="2d", paths=paths, alert_sinks=(), base_url="http://x"))
