"""The registration use case when the patient's baseline changes: the studies registered to the old
baseline are registered again in the same batches as the new studies (so the registration slots are
all busy once instead of waiting twice for a batch's slowest job), and what can be composed from
registrations already made is composed and checked, not optimised again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.pipeline import RegistrationJob, RegistrationOutput
from engine.registration import RegistrationResult, Stage
from engine.state_paths import StatePaths
from engine.store import Store, open_store
from engine.store import ingest as ingest_sql
from engine.store import pipeline as pipeline_sql
from engine.types import StudyStatus
from engine.usecases.register_study import register_studies, stale_registrations
from tests.course_factory import PATIENT, add_study, record_rt_end, scan_date, study_uid


def test_a_new_baseline_re_registers_the_earlier_studies_in_the_same_batch(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    batches: list[list[tuple[str, str | None, str, bool]]] = []

    def compute(jobs: Sequence[RegistrationJob]) -> list[RegistrationOutput]:
        batches.append([(j.moving.study_uid, j.fixed.study_uid if j.fixed else None, j.kind, j.composed is not None)
                        for j in jobs])
        return [RegistrationOutput(j.moving.study_uid, j.kind, j.fixed.study_uid if j.fixed else j.moving.study_uid,
                                   resampled={}) for j in jobs]

    with open_store(tmp_path / "g.duckdb") as store:
        record_rt_end(store)  # before the first scan: timepoint 0 is the baseline
        add_study(store, paths, 0)
        add_study(store, paths, 1, baseline_uid=study_uid(0))
        # the end of radiotherapy falls between timepoints 1 and 2: timepoint 2 is the RANO baseline
        record_rt_end(store, scan_date(1) + (scan_date(2) - scan_date(1)) / 2)
        for t in (2, 3):
            add_study(store, paths, t, baseline_uid=study_uid(2))
            with store.transaction() as con:
                ingest_sql.set_study_status(con, study_uid(t), StudyStatus.SEGMENTED)  # new, not registered
        assert sorted(stale_registrations(store, PATIENT)) == [study_uid(0), study_uid(1)]

        outcomes = register_studies([study_uid(2), study_uid(3)], store=store, ready=StudyStatus.SEGMENTED,
                                    reference_sequence="T1c", compute=compute)

        # the old baseline (0) is registered to the new one with the new studies; 1 was registered to
        # 0, so 1 -> 2 is 1 -> 0 then 0 -> 2, and 1 -> its previous study 0 is 1 -> 2 then 2 -> 0
        assert batches == [[(study_uid(2), None, "baseline", False),
                            (study_uid(3), study_uid(2), "baseline", False),
                            (study_uid(0), study_uid(2), "baseline", False)],
                           [(study_uid(1), study_uid(2), "baseline", True)],
                           [(study_uid(1), study_uid(0), "previous", True)]]
        assert all(o.ok for o in outcomes) and len(outcomes) == 5
        assert stale_registrations(store, PATIENT) == []


def _rigid(angle_deg: float, shift: tuple[float, float, float]) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = shift
    return m


def _result(matrix: np.ndarray, *, passed: bool = True, method: str = "test-registrar") -> RegistrationResult:
    return RegistrationResult(matrix=matrix, stage=Stage.RIGID, metric_name="m", final_metric=0.0, similarity=0.5,
                              overlap=1.0, rotation_deg=0.0, translation_mm=0.0, scale_deviation=0.0, passed=passed,
                              qc_reason="QC passed." if passed else "QC failed: test.", method=method, elapsed_s=0.0)


def _course(store: Store, paths: StatePaths) -> None:
    """Timepoints 0 (old baseline) and 1 (registered to 0 by a known matrix); RT ends before 2,
    so 2 becomes the baseline when 2, 3 and 4 arrive (new, not registered)."""
    record_rt_end(store)
    add_study(store, paths, 0)
    add_study(store, paths, 1, baseline_uid=study_uid(0))
    with store.transaction() as con:  # 1 -> 0 as a registrar found it
        pipeline_sql.record_registration(con, study_uid=study_uid(1), reference_study_uid=study_uid(0),
                                         kind="baseline", result=_result(ONE_TO_ZERO), resampled={})
    record_rt_end(store, scan_date(1) + (scan_date(2) - scan_date(1)) / 2)
    for t in (2, 3, 4):
        add_study(store, paths, t, baseline_uid=study_uid(2))
        with store.transaction() as con:
            ingest_sql.set_study_status(con, study_uid(t), StudyStatus.SEGMENTED)


ONE_TO_ZERO = _rigid(4.0, (3.0, -2.0, 1.0))
DIRECT = {(0, 2): _rigid(-6.0, (-5.0, 1.0, 0.5)), (3, 2): _rigid(2.0, (1.0, 1.0, 1.0)),
          (4, 2): _rigid(-3.0, (0.0, 4.0, -1.0))}


def _registrar_compute(calls: list[RegistrationJob], failing: set[tuple[int, int]] = frozenset()):  # noqa: ANN202
    """A compute that returns the known matrix of each direct pair, and a composed job's own matrix
    and method (as compute_registration does after its QC); ``failing`` pairs fail their QC."""
    index = {study_uid(t): t for t in range(5)}

    def compute(jobs: Sequence[RegistrationJob]) -> list[RegistrationOutput]:
        out = []
        for j in jobs:
            calls.append(j)
            if j.fixed is None:
                out.append(RegistrationOutput(j.moving.study_uid, j.kind, j.moving.study_uid))
                continue
            pair = (index[j.moving.study_uid], index[j.fixed.study_uid])
            matrix = np.asarray(j.composed) if j.composed is not None else DIRECT.get(pair, np.eye(4))
            method = j.composed_method if j.composed is not None else "test-registrar"
            out.append(RegistrationOutput(j.moving.study_uid, j.kind, j.fixed.study_uid,
                                          result=_result(matrix, passed=pair not in failing, method=method),
                                          resampled={}))
        return out
    return compute


def _stored(store: Store, t: int, kind: str) -> np.ndarray:
    row = pipeline_sql.current_registration(store, study_uid(t), kind)
    assert row is not None
    return np.asarray(row["matrix"])


def test_registrations_known_from_stored_ones_are_composed_not_optimised(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    calls: list[RegistrationJob] = []
    with open_store(tmp_path / "g.duckdb") as store:
        _course(store, paths)
        outcomes = register_studies([study_uid(t) for t in (2, 3, 4)], store=store, ready=StudyStatus.SEGMENTED,
                                    reference_sequence="T1c", compute=_registrar_compute(calls))
        assert all(o.ok for o in outcomes)
        direct = sorted((j.moving.study_uid, j.kind) for j in calls if j.composed is None and j.fixed is not None)
        assert direct == sorted([(study_uid(0), "baseline"), (study_uid(3), "baseline"), (study_uid(4), "baseline")])
        # 1 -> 2 is 1 -> 0 then 0 -> 2
        assert np.allclose(_stored(store, 1, "baseline"), DIRECT[(0, 2)] @ ONE_TO_ZERO)
        # to the previous study: 4 -> 3 is 4 -> 2 then the inverse of 3 -> 2; 1 -> 0 comes back as found
        assert np.allclose(_stored(store, 4, "previous"), np.linalg.inv(DIRECT[(3, 2)]) @ DIRECT[(4, 2)])
        assert np.allclose(_stored(store, 1, "previous"), ONE_TO_ZERO)
        row = pipeline_sql.current_registration(store, study_uid(4), "previous")
        assert row["method"].startswith("composed (#") and "inverse of #" in row["method"]
        assert "test-registrar" in row["method"]
        # 3's previous study is the baseline: no registration to the previous study
        assert pipeline_sql.current_registration(store, study_uid(3), "previous") is None
        assert stale_registrations(store, PATIENT) == []


def test_a_failed_half_means_a_direct_registration(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    calls: list[RegistrationJob] = []
    with open_store(tmp_path / "g.duckdb") as store:
        _course(store, paths)
        register_studies([study_uid(t) for t in (2, 3, 4)], store=store, ready=StudyStatus.SEGMENTED,
                         reference_sequence="T1c", compute=_registrar_compute(calls, failing={(0, 2), (3, 2)}))
        jobs = {(j.moving.study_uid, j.fixed.study_uid if j.fixed else None, j.kind): j for j in calls}
        # the old baseline failed to register to the new one (and is quarantined): 1 is registered directly
        assert jobs[(study_uid(1), study_uid(2), "baseline")].composed is None
        assert sql_status(store, 0) == StudyStatus.QUARANTINED
        # 3 failed to register to the baseline: 4 -> 3 cannot be composed; 3 is quarantined, so no job
        assert (study_uid(4), study_uid(3), "previous") not in jobs
        assert sql_status(store, 3) == StudyStatus.QUARANTINED
        # 1's previous study (0) is quarantined: no registration to it
        assert (study_uid(1), study_uid(0), "previous") not in jobs


def test_a_re_registered_study_keeps_its_registration_to_an_unchanged_previous_study(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    calls: list[RegistrationJob] = []
    with open_store(tmp_path / "g.duckdb") as store:
        _course(store, paths)
        with store.transaction() as con:
            pipeline_sql.record_registration(con, study_uid=study_uid(1), reference_study_uid=study_uid(0),
                                             kind="previous", result=_result(ONE_TO_ZERO), resampled=None)
        before = pipeline_sql.current_registration(store, study_uid(1), "previous")
        register_studies([study_uid(t) for t in (2, 3, 4)], store=store, ready=StudyStatus.SEGMENTED,
                         reference_sequence="T1c", compute=_registrar_compute(calls))
        assert not [j for j in calls if j.moving.study_uid == study_uid(1) and j.kind == "previous"]
        assert pipeline_sql.current_registration(store, study_uid(1), "previous") == before


def sql_status(store: Store, t: int) -> str:
    return pipeline_sql.study_row(store, study_uid(t))["status"]
