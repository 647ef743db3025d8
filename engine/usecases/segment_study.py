"""Use case ``segment_study(study_uid)``: load the study's volumes through the store, segment
them (``engine.pipeline.compute_segmentation``, run by the caller's ``compute`` wherever it
likes), record the labels and the study's new status through the store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from engine.ingest import exam_label
from engine.pipeline import StageOutcome, StudyFiles
from engine.store import Store
from engine.store import ingest as ingest_sql
from engine.store import pipeline as sql
from engine.types import SegmentationOutput, StudyStatus

#: segments the given studies (in order, each output for the study at the same place)
ComputeSegmentations = Callable[[Sequence[StudyFiles]], Sequence[SegmentationOutput]]


def study_files(store: Store, study_uid: str) -> StudyFiles:
    """One study as the compute parts see it: ids, the exam label and its stored file paths."""
    row = sql.study_row(store, study_uid)
    seg = sql.current_segmentation(store, study_uid)
    return StudyFiles(
        study_uid=study_uid,
        patient_key=row["patient_key"],
        exam=exam_label(row["patient_key"], row["study_date"]),
        volumes=sql.study_volumes(store, study_uid),
        labels=seg["labels_path"] if seg else None,
    )


def quarantine(con: sql.Con, row: dict, *, stage: str, reason: str, detail: str | None = None) -> None:
    """The study leaves the pipeline with the reason (caller's transaction)."""
    ingest_sql.add_quarantine(con, stage=stage, reason=reason, study_uid=row["study_uid"],
                              archive_study_id=row["archive_study_id"], patient_key=row["patient_key"],
                              detail=detail)
    ingest_sql.set_study_status(con, row["study_uid"], StudyStatus.QUARANTINED)


def commit_segmentation(store: Store, files: StudyFiles, out: SegmentationOutput) -> StageOutcome:
    row = sql.study_row(store, files.study_uid)
    with store.transaction() as con:
        if out.error:
            quarantine(con, row, stage="segmentation", reason=out.error, detail=out.error_detail)
            return StageOutcome(files.study_uid, "segmentation", False, out.error)
        sql.record_segmentation(con, study_uid=files.study_uid, output=out)
        ingest_sql.set_study_status(con, files.study_uid, StudyStatus.SEGMENTED)
    text = ", ".join(f"{k} {v:.1f} mL" for k, v in out.volumes_ml.items())
    return StageOutcome(files.study_uid, "segmentation", True, f"{files.exam}: {text}", out.flags)


def segment_studies(study_uids: Iterable[str], *, store: Store, compute: ComputeSegmentations) -> list[StageOutcome]:
    """Segment those of ``study_uids`` waiting for it (status INGESTED): one ``compute`` call for
    all of them, so the caller can run them side by side; each result committed on its own."""
    todo = [u for u in study_uids if sql.study_row(store, u)["status"] == StudyStatus.INGESTED]
    if not todo:
        return []
    files = [study_files(store, u) for u in todo]
    outputs = compute(files)
    return [commit_segmentation(store, f, out) for f, out in zip(files, outputs, strict=True)]


def segment_study(study_uid: str, *, store: Store, compute: ComputeSegmentations) -> StageOutcome | None:
    """One study (None: it is not waiting for segmentation)."""
    outcomes = segment_studies([study_uid], store=store, compute=compute)
    return outcomes[0] if outcomes else None
