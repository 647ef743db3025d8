"""The registration use case when the patient's baseline changes: the studies registered to the old
baseline are registered again, in the same batch as the new studies (one ``compute`` call, so the
registration slots are all busy once instead of waiting twice for a batch's slowest job)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.pipeline import RegistrationJob, RegistrationOutput
from engine.state_paths import StatePaths
from engine.store import ingest as ingest_sql
from engine.store import open_store
from engine.types import StudyStatus
from engine.usecases.register_study import register_studies, stale_registrations
from tests.course_factory import PATIENT, add_study, record_rt_end, scan_date, study_uid


def test_a_new_baseline_re_registers_the_earlier_studies_in_the_same_batch(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    batches: list[list[tuple[str, str | None, str]]] = []

    def compute(jobs: Sequence[RegistrationJob]) -> list[RegistrationOutput]:
        batches.append([(j.moving.study_uid, j.fixed.study_uid if j.fixed else None, j.kind) for j in jobs])
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

        assert batches == [[(study_uid(2), None, "baseline"),
                            (study_uid(3), study_uid(2), "baseline"),
                            (study_uid(0), study_uid(2), "baseline"),
                            (study_uid(1), study_uid(2), "baseline"),
                            (study_uid(1), study_uid(0), "previous")]]
        assert all(o.ok for o in outcomes) and len(outcomes) == 5
        assert stale_registrations(store, PATIENT) == []
