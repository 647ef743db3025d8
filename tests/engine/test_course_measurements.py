"""Reassessment re-measures only what changed (issue 34): assessing a patient after each new study
gives the same stored measurements, lesions and calls as assessing the whole course at once, while
reading only the new study's labels; a new baseline re-tracks the follow-ups, a new segmentation
re-measures its study."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from engine.criteria import Mode, Profile, load_criteria
from engine.state_paths import StatePaths
from engine.store import Store, open_store
from engine.usecases.patient_course import assess_patient_course
from tests.course_factory import PATIENT, add_study, record_rt_end, register, scan_date, study_uid

CRITERIA = load_criteria(Profile.RANO2)
N = 6
#: what a measurement says; ids, times, registration row ids and the fingerprint (which holds
#: them) differ between two stores by construction
SKIP = {"measurement_id", "computed_at", "registration_id", "inputs_sha256", "assessed_at"}


def _assess(store: Store, paths: StatePaths) -> None:
    assess_patient_course(store, patient_key=PATIENT, criteria=CRITERIA, mode=Mode.TWO_D, paths=paths,
                          alert_sinks=("dashboard",), base_url="http://x")


def _state(store: Store) -> dict[str, list]:
    def rows(sql: str) -> list:
        return [{k: v for k, v in r.items() if k not in SKIP} for r in store.query_dicts(sql)]
    return {
        "measurements": rows("SELECT * FROM measurements WHERE NOT superseded ORDER BY study_uid"),
        "lesions": rows("""SELECT l.* FROM lesions l JOIN measurements m USING (measurement_id)
                           WHERE NOT m.superseded ORDER BY l.study_uid, l.lesion_index"""),
        "calls": rows("SELECT * FROM assessments ORDER BY study_uid"),
        "growth": rows("SELECT * EXCLUDE (computed_at) FROM growth ORDER BY label, model"),
    }


def _measured(store: Store) -> int:
    """Measurement rows ever written (superseded ones included)."""
    return int(store.query("SELECT count(*) FROM measurements")[0][0])


def _from_scratch(root: Path, *, rt_end: date | None = None) -> dict[str, list]:
    paths = StatePaths.under(root)
    with open_store(root / "g.duckdb") as store:
        record_rt_end(store, *([rt_end] if rt_end else []))
        baseline = None
        for t in range(N):
            uid = add_study(store, paths, t, baseline_uid=baseline)
            if baseline is None and (rt_end is None or scan_date(t) > rt_end):
                baseline = uid
        _assess(store, paths)
        return _state(store)


def test_assessing_after_each_study_equals_assessing_the_course_at_once(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path / "incremental")
    with open_store(tmp_path / "incremental" / "g.duckdb") as store:
        record_rt_end(store)
        for t in range(N):
            add_study(store, paths, t, baseline_uid=None if t == 0 else study_uid(0))
            _assess(store, paths)
            assert _measured(store) == t + 1  # the new study only: the others kept their measurement
        incremental = _state(store)
        _assess(store, paths)  # nothing changed: nothing is measured again
        assert _measured(store) == N and _state(store) == incremental
    scratch = _from_scratch(tmp_path / "scratch")
    assert incremental == scratch
    assert len(scratch["measurements"]) == N and len(scratch["calls"]) == N
    assert {c["response"] for c in scratch["calls"]} >= {"BASELINE", "SD", "PD"}  # a varied course


def test_a_new_baseline_re_tracks_the_follow_ups_and_a_new_segmentation_re_measures_its_study(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path / "incremental")
    rt_end = scan_date(1) + (scan_date(2) - scan_date(1)) / 2  # between timepoints 1 and 2
    with open_store(tmp_path / "incremental" / "g.duckdb") as store:
        record_rt_end(store)
        for t in range(N):
            add_study(store, paths, t, baseline_uid=None if t == 0 else study_uid(0))
        _assess(store, paths)
        assert _measured(store) == N
        record_rt_end(store, rt_end)  # the RANO 2.0 baseline is now timepoint 2: the pipeline re-registers
        for t in range(2, N):
            register(store, paths, t, baseline_uid=study_uid(2))
        _assess(store, paths)
        # every study changes role: 0 is no longer the baseline, 1 is no longer tracked (its
        # registration is to the old baseline), 2 is the new baseline, 3.. are tracked in its space
        assert _measured(store) == 2 * N
        after_baseline = _state(store)
        add_study(store, paths, 3, baseline_uid=study_uid(2))  # segmented again: a new segmentation row
        _assess(store, paths)
        assert _measured(store) == 2 * N + 1  # that study only
        assert _state(store) == after_baseline  # the same labels measure the same
    assert after_baseline == _from_scratch(tmp_path / "scratch", rt_end=rt_end)
