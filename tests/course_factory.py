"""One patient's course of label maps in a real store, for the reassessment test and benchmark.

Timepoint ``t`` (0 = the first scan, ~8 weeks apart) holds an enhancing lesion that shrinks, then
grows (so the calls change along the course), a second small enhancing lesion, oedema around
both and a resection cavity, on a 1 mm grid. Each study is recorded as the pipeline records it:
the study row, its segmentation (labels file under ``labels/``) and a passed registration to the
baseline whose resampled labels (identity transform: the same map) lie under ``registered/``;
the baseline is registered to itself. Radiotherapy ended a week before the first scan
(:func:`record_rt_end`), so the first scan is the RANO 2.0 baseline.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

import numpy as np

from engine.dicom.nifti import write_nifti
from engine.ingest import IngestedStudy
from engine.state_paths import StatePaths
from engine.events import ClinicalEvent, EventType
from engine.store import Store
from engine.store import assessment as assessment_sql
from engine.store import ingest as ingest_sql
from engine.store import pipeline as pipeline_sql
from engine.types import SegmentationOutput, StudyStatus, Volume

PATIENT = "P-COURSE"
FIRST_SCAN = date(2025, 1, 6)
SHAPE = (96, 96, 72)


def record_rt_end(store: Store, rt_end: date = FIRST_SCAN - timedelta(weeks=1)) -> None:
    """The patient's end of radiotherapy (replacing the one recorded before)."""
    with store.transaction() as con:
        assessment_sql.import_clinical_events(con, [ClinicalEvent(PATIENT, rt_end, EventType.RT_END, "")],
                                              source="course", entered_by="test")


def study_uid(t: int) -> str:
    return f"9.{t + 1}"


def scan_date(t: int) -> date:
    return FIRST_SCAN + timedelta(weeks=8 * t)


@functools.lru_cache(maxsize=64)
def labels_at(t: int, *, shape: tuple[int, int, int] = SHAPE) -> Volume:
    """The label map of timepoint ``t`` (BraTS 2024 values: 1 NETC, 2 SNFH, 3 ET, 4 RC); cached,
    do not change the array."""
    zz, yy, xx = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    labels = np.zeros(shape, dtype=np.uint8)
    c = np.array(shape, dtype=np.float32) / 2

    def ball(centre: np.ndarray, radius: float) -> np.ndarray:
        return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2

    main = c + np.array([0, -12, -10])
    second = c + np.array([4, 18, 16])
    r_main = min(12.0 - 2.2 * min(t, 3) + 2.5 * max(t - 3, 0), 14.0)  # response, then growth to 14 mm
    labels[ball(main, r_main + 6) | ball(second, 10)] = 2
    labels[ball(main, r_main)] = 3
    labels[ball(main, max(r_main - 4, 1))] = 1
    labels[ball(second, 5.5)] = 3
    labels[ball(c + np.array([-8, 0, 20]), 6)] = 4
    return Volume(array=labels, affine=np.eye(4))


def add_study(store: Store, paths: StatePaths, t: int, *, baseline_uid: str | None = None,
              pattern: int | None = None) -> str:
    """Record timepoint ``t`` as segmented and registered to ``baseline_uid`` (its own baseline
    when None), with the label map of timepoint ``pattern`` (default ``t``); returns its UID."""
    uid = study_uid(t)
    labels = labels_at(t if pattern is None else pattern)
    rel = f"{PATIENT}/{uid}/labels.nii.gz"
    (paths.labels_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    write_nifti(labels, paths.labels_dir / rel, force=True)
    study = IngestedStudy(archive_study_id=f"a-{uid}", study_uid=uid, patient_key=PATIENT, study_date=scan_date(t),
                          series=())
    with store.transaction() as con:
        ingest_sql.record_study(con, study, change_seq=None, seen_at=datetime(2025, 1, 1))
        pipeline_sql.record_segmentation(con, study_uid=uid, output=SegmentationOutput(
            uid, labels_path=rel, volumes_ml={}, model_name="course", model_version="1", weights_sha256="w"))
        ingest_sql.set_study_status(con, uid, StudyStatus.SEGMENTED)
    register(store, paths, t, baseline_uid=baseline_uid, pattern=pattern)
    return uid


def register(store: Store, paths: StatePaths, t: int, *, baseline_uid: str | None,
             pattern: int | None = None) -> None:
    """(Re-)register timepoint ``t`` (label map of ``pattern``, default ``t``) to ``baseline_uid``
    (itself when None or its own UID)."""
    uid = study_uid(t)
    resampled: dict[str, str] = {}
    if baseline_uid is not None and baseline_uid != uid:
        target = paths.registered_dir / PATIENT / uid / "labels.nii.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_nifti(labels_at(t if pattern is None else pattern), target, force=True)
        resampled = {"labels": f"{PATIENT}/{uid}/labels.nii.gz"}
    with store.transaction() as con:
        pipeline_sql.record_registration(con, study_uid=uid, reference_study_uid=baseline_uid or uid,
                                         kind="baseline", result=None, resampled=resampled)
        ingest_sql.set_study_status(con, uid, StudyStatus.REGISTERED)
