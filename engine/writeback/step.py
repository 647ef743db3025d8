"""The write-back step (use case): an assessed study's SEG and SR (and, with ``key_image``, a
secondary capture with the labels and lines burnt in), stored into its study in the archive,
recorded in the store.

:func:`write_back_study` loads through the store, builds with the pure builders
(:func:`~engine.writeback.build_segmentation`, :func:`~engine.writeback.report.build_report`),
writes each object as a file under ``<state>/writeback/<patient>/<study>/`` (kept for
``gliowatch export``), uploads it, and commits its row with the study's status in one
transaction. An object is written only when what it says changed: the SEG when the segmentation
(model identity, labels file) or the SEG type changed, the SR when its content digest changed
(a new scan of the patient changes earlier studies' final responses), the key image (kind ``SC``)
when the SR's content digest changed or it has none yet. A new object supersedes the
earlier one of its kind, which is deleted from the archive when ``delete_superseded`` is set.

UIDs are derived from the study, the kind, the content and the assessment time (``2.25`` form),
so a step interrupted between upload and commit uploads the same instance again (Orthanc keeps
one) and records it: nothing is orphaned, nothing duplicated.
"""

from __future__ import annotations

import io
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import pydicom

from engine.archive import Archive
from engine.dicom.nifti import read_nifti
from engine.errors import GlioWatchError, WriteBackError
from engine.state_paths import StatePaths, StoredFile
from engine.store import Store
from engine.store import writeback as sql
from engine.store import writeback_report as report_sql
from engine.writeback.key_image import build_key_image
from engine.writeback.report import build_report
from engine.writeback.report_codes import TRACKING_NAMESPACE
from engine.writeback.report_content import content_digest
from engine.writeback.report_inputs import load_report_content
from engine.writeback.segmentation import build_segmentation

log = logging.getLogger("gliowatch.writeback")

SEG_SERIES_NUMBER = 9901
SR_SERIES_NUMBER = 9902
KEY_IMAGE_SERIES_NUMBER = 9903


@dataclass(frozen=True, slots=True)
class WriteBackOptions:
    segmentation_type: str = "BINARY"  # or LABELMAP
    delete_superseded: bool = False
    key_image: bool = False  # also a secondary capture with the labels and RANO lines burnt in


@dataclass(frozen=True, slots=True)
class WriteBackOutcome:
    study_uid: str
    ok: bool
    message: str
    written: tuple[str, ...] = ()  # series UIDs written now
    deleted: tuple[str, ...] = ()  # superseded series deleted from the archive


def derived_uid(*parts: str) -> str:
    """A UID that is the same for the same parts (``2.25.<uuid5>``)."""
    return str(hd.UID.from_uuid(str(uuid.uuid5(TRACKING_NAMESPACE, "/".join(parts)))))


def write_back_study(
    store: Store, archive: Archive, study_uid: str, *, paths: StatePaths, writeback_dir: Path,
    assessed_at: datetime, options: WriteBackOptions = WriteBackOptions(),
) -> WriteBackOutcome:
    """Write the study's SEG and SR into the archive (when changed); record the outcome.

    A non-retryable :class:`GlioWatchError` (a series that is not one volume, labels off the
    grid) is recorded as FAILED with its reason and does not stop the caller; a retryable one
    (archive down) propagates, and the study stays due.
    """
    study = report_sql.study_for_report(store, study_uid)
    exam = f"study {study_uid}" if study is None else f"patient {study['patient_key']}, MRI {study['study_date']}"
    try:
        if study is None:
            raise WriteBackError("The study has no current segmentation to write back", exam=exam,
                                 action="Nothing was written back. Re-score the study.")
        written, deleted = _write(store, archive, study, paths=paths, writeback_dir=writeback_dir,
                                  assessed_at=assessed_at, options=options, exam=exam)
    except GlioWatchError as exc:
        if exc.retryable:
            raise
        log.warning("write-back of %s failed: %s", exam, exc.reason)
        return record_failure(store, study_uid, assessed_at=assessed_at, reason=exc.reason)
    message = f"{exam}: {len(written)} object(s) written, {len(deleted)} superseded deleted"
    return WriteBackOutcome(study_uid, True, message, tuple(written), tuple(deleted))


def record_failure(store: Store, study_uid: str, *, assessed_at: datetime, reason: str) -> WriteBackOutcome:
    """Record a failed write-back (tried again after the study's next assessment)."""
    with store.transaction() as con:
        sql.set_status(con, study_uid=study_uid, status="FAILED", reason=reason, assessed_at=assessed_at)
    return WriteBackOutcome(study_uid, False, reason)


def _write(store: Store, archive: Archive, study: dict[str, Any], *, paths: StatePaths, writeback_dir: Path,
           assessed_at: datetime, options: WriteBackOptions, exam: str) -> tuple[list[str], list[str]]:
    study_uid, patient_key = str(study["study_uid"]), str(study["patient_key"])
    labels = read_nifti(paths.resolve(StoredFile.LABELS, study["labels_path"]))
    folder = writeback_dir / patient_key / study_uid
    stamp = assessed_at.isoformat()
    pending: list[tuple[str, Any, str, str]] = []  # (kind, dataset, content key, file)
    seg_key = "|".join(str(study[k] or "") for k in ("model_name", "model_version", "weights_sha256",
                                                     "config_sha256", "labels_path")) + f"|{options.segmentation_type}"
    current_seg = sql.current_object(store, study_uid, "SEG")
    reusable = (current_seg is not None and current_seg["content_key"] == seg_key
                and (writeback_dir / current_seg["file_path"]).is_file())
    if reusable:
        seg = pydicom.dcmread(writeback_dir / current_seg["file_path"], stop_before_pixels=True)
        sources = None
    else:
        sources = _t1c_headers(store, archive, study_uid, exam)
        seg = build_segmentation(
            sources, labels, model_name=str(study["model_name"])[:64], model_version=str(study["model_version"])[:64],
            weights_sha256=str(study["weights_sha256"]), config_sha256=study["config_sha256"] or None,
            series_number=SEG_SERIES_NUMBER, series_uid=derived_uid(study_uid, "SEG", seg_key, stamp),
            sop_instance_uid=derived_uid(study_uid, "SEG", seg_key, stamp, "instance"),
            segmentation_type=options.segmentation_type, exam=exam)
        pending.append(("SEG", seg, seg_key, f"{patient_key}/{study_uid}/SEG_{seg.SeriesInstanceUID}.dcm"))
    content = load_report_content(store, study_uid)
    if content is not None:
        sr_key = content_digest(content, segmentation_uid=str(seg.SOPInstanceUID))
        current_sr = sql.current_object(store, study_uid, "SR")
        if current_sr is None or current_sr["content_key"] != sr_key:
            sources = sources or _t1c_headers(store, archive, study_uid, exam)
            prior = [pydicom.dcmread(writeback_dir / o["file_path"], stop_before_pixels=True)
                     for uid in content.prior_study_uids
                     if (o := sql.current_object(store, uid, "SEG")) is not None
                     and (writeback_dir / o["file_path"]).is_file()]
            sr = build_report(content, t1c_datasets=sources, segmentation=seg, prior_evidence=prior,
                              series_uid=derived_uid(study_uid, "SR", sr_key, stamp),
                              sop_instance_uid=derived_uid(study_uid, "SR", sr_key, stamp, "instance"),
                              series_number=SR_SERIES_NUMBER, device_uid=derived_uid("GlioWatch", "device"))
            pending.append(("SR", sr, sr_key, f"{patient_key}/{study_uid}/SR_{sr.SeriesInstanceUID}.dcm"))
        current_sc = sql.current_object(store, study_uid, "SC") if options.key_image else None
        if options.key_image and (current_sc is None or current_sc["content_key"] != sr_key):
            sources = sources or _t1c_headers(store, archive, study_uid, exam)
            pending += _key_image(content, sources, labels, sr_key=sr_key, stamp=stamp, exam=exam)
    folder.mkdir(parents=True, exist_ok=True)
    uploaded = []
    for kind, dataset, key, relative in pending:
        path = writeback_dir / relative
        tmp = path.with_suffix(".tmp")
        dataset.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
        ids = archive.upload_file(path)
        uploaded.append((kind, dataset, key, relative, ids[0] if ids else None))
    with store.transaction() as con:
        for kind, dataset, key, relative, instance_id in uploaded:
            sql.record_object(con, series_uid=str(dataset.SeriesInstanceUID),
                              sop_instance_uid=str(dataset.SOPInstanceUID), study_uid=study_uid,
                              patient_key=patient_key, kind=kind, content_key=key, file_path=relative,
                              archive_instance_id=instance_id)
        sql.set_status(con, study_uid=study_uid, status="WRITTEN", reason=None, assessed_at=assessed_at)
    deleted = _delete_superseded(store, archive, study_uid) if options.delete_superseded else []
    return [str(u[1].SeriesInstanceUID) for u in uploaded], deleted


def _key_image(content: Any, sources: list[Any], labels: Any, *, sr_key: str, stamp: str,
               exam: str) -> list[tuple[str, Any, str, str]]:
    """The key image to store, or none when it cannot be made (the SEG and SR go on without it)."""
    study_uid = content.study_uid
    try:
        image = build_key_image(content, sources, labels, series_uid=derived_uid(study_uid, "SC", sr_key, stamp),
                                sop_instance_uid=derived_uid(study_uid, "SC", sr_key, stamp, "instance"),
                                series_number=KEY_IMAGE_SERIES_NUMBER, exam=exam)
    except WriteBackError as exc:
        log.warning("key image of %s not written: %s", exam, exc.reason)
        return []
    return [("SC", image, sr_key, f"{content.patient_key}/{study_uid}/SC_{image.SeriesInstanceUID}.dcm")]


def _t1c_headers(store: Store, archive: Archive, study_uid: str, exam: str) -> list[Any]:
    """The T1c series' instances (the objects' source images), fetched as one series
    (``Archive.fetch_series``: one DICOMweb response from Orthanc, not one request per instance),
    in instance-number order."""
    series = report_sql.t1c_series(store, study_uid)
    if series is None or not series["archive_series_id"] or not series["archive_study_id"]:
        raise WriteBackError("The study's post-contrast T1 series is not known in the archive", exam=exam,
                             action="Nothing was written back. Check that the study is still in the archive.")
    info = archive.series(str(series["archive_series_id"]))
    files = archive.fetch_series(archive.study(str(series["archive_study_id"])), info)
    datasets = [pydicom.dcmread(io.BytesIO(data)) for data in files]
    return sorted(datasets, key=lambda ds: (int(getattr(ds, "InstanceNumber", 0) or 0), str(ds.SOPInstanceUID)))


def _delete_superseded(store: Store, archive: Archive, study_uid: str) -> list[str]:
    delete = getattr(archive, "delete_instance", None)
    if delete is None:  # an archive that cannot delete (a folder replay) keeps them
        return []
    deleted = []
    for row in sql.superseded_in_archive(store, study_uid):
        delete(str(row["archive_instance_id"]))
        with store.transaction() as con:
            sql.mark_deleted(con, str(row["series_uid"]))
        deleted.append(str(row["series_uid"]))
    return deleted
