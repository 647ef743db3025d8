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
from collections.abc import Sequence
from dataclasses import dataclass, field
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
from engine.writeback.report_content import ReportContent, content_digest
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


@dataclass(frozen=True, slots=True)
class WriteBackPlan:
    """Phase 1 of one study's write-back: everything it needs from the store, read in the writer's
    thread (:func:`plan_write_backs`). Phases 2 and 3 do not read the store again."""

    study_uid: str
    assessed_at: datetime
    exam: str
    options: WriteBackOptions
    writeback_dir: Path
    failure: str = ""  # recorded as FAILED without touching the archive (no current segmentation)
    patient_key: str = ""
    study: dict[str, Any] = field(default_factory=dict)  # engine.store.writeback_report.study_for_report
    labels_file: Path | None = None
    seg_key: str = ""
    reuse_seg: str | None = None  # the current SEG's file (relative to writeback_dir), when unchanged
    seg_instance_uid: str = ""  # the SOP Instance UID of the SEG the report refers to
    content: ReportContent | None = None
    sr_key: str = ""
    write_sr: bool = False
    write_sc: bool = False
    #: per earlier study the report compares with: its SEG files, best first (the one this batch
    #: writes, then the one in the store); the first that exists is referenced as evidence
    prior_segs: tuple[tuple[str, ...], ...] = ()
    t1c: dict[str, Any] | None = None  # engine.store.writeback_report.t1c_series

    @property
    def stamp(self) -> str:
        return self.assessed_at.isoformat()

    @property
    def series_uids(self) -> frozenset[str]:
        """The series this write-back may store into the archive (UIDs are derived, so known
        before anything is built): until it is recorded, the watcher must not take them for input."""
        if self.failure:
            return frozenset()
        uids = set() if self.reuse_seg is not None else {derived_uid(self.study_uid, "SEG", self.seg_key, self.stamp)}
        if self.write_sr:
            uids.add(derived_uid(self.study_uid, "SR", self.sr_key, self.stamp))
        if self.write_sc:
            uids.add(derived_uid(self.study_uid, "SC", self.sr_key, self.stamp))
        return frozenset(uids)


@dataclass(frozen=True, slots=True)
class WrittenObject:
    kind: str  # SEG, SR or SC
    series_uid: str
    sop_instance_uid: str
    content_key: str
    file_path: str  # relative to writeback_dir
    archive_instance_id: str | None


@dataclass(frozen=True, slots=True)
class WriteBackExecution:
    """Phase 2's result: the objects built, saved and uploaded, or why none could be."""

    plan: WriteBackPlan
    written: tuple[WrittenObject, ...] = ()
    failure: str = ""  # non-retryable: recorded as FAILED


def write_back_study(
    store: Store, archive: Archive, study_uid: str, *, paths: StatePaths, writeback_dir: Path,
    assessed_at: datetime, options: WriteBackOptions = WriteBackOptions(),
) -> WriteBackOutcome:
    """Write the study's SEG and SR into the archive (when changed); record the outcome.

    A non-retryable :class:`GlioWatchError` (a series that is not one volume, labels off the
    grid) is recorded as FAILED with its reason and does not stop the caller; a retryable one
    (archive down) propagates, and the study stays due. The three phases, for a caller that runs
    the middle one on another thread (``flows.writeback``): :func:`plan_write_backs` (reads the
    store), :func:`execute_write_back` (builds and uploads; no store), :func:`record_write_back`.
    """
    [plan] = plan_write_backs(store, [(study_uid, assessed_at)], paths=paths, writeback_dir=writeback_dir,
                              options=options)
    return record_write_back(store, archive, execute_write_back(plan, archive))


def record_failure(store: Store, study_uid: str, *, assessed_at: datetime, reason: str) -> WriteBackOutcome:
    """Record a failed write-back (tried again after the study's next assessment)."""
    with store.transaction() as con:
        sql.set_status(con, study_uid=study_uid, status="FAILED", reason=reason, assessed_at=assessed_at)
    return WriteBackOutcome(study_uid, False, reason)


def plan_write_backs(store: Store, due: Sequence[tuple[str, datetime]], *, paths: StatePaths, writeback_dir: Path,
                     options: WriteBackOptions) -> list[WriteBackPlan]:
    """Phase 1 for a batch of (study UID, assessed at), in the order given (a patient's studies by
    date): what each study's write-back reads from the store. A report refers to the SEGs of the
    patient's earlier studies; an earlier study whose new SEG is planned in the same batch is
    referred to by that SEG, as if the batch were written and recorded one study at a time."""
    planned_seg: dict[str, str] = {}
    plans = []
    for study_uid, assessed_at in due:
        plan = _plan(store, study_uid, assessed_at, paths=paths, writeback_dir=writeback_dir, options=options,
                     planned_seg=planned_seg)
        if not plan.failure and plan.reuse_seg is None:
            planned_seg[study_uid] = _seg_file(plan)
        plans.append(plan)
    return plans


def _plan(store: Store, study_uid: str, assessed_at: datetime, *, paths: StatePaths, writeback_dir: Path,
          options: WriteBackOptions, planned_seg: dict[str, str]) -> WriteBackPlan:
    study = report_sql.study_for_report(store, study_uid)
    exam = f"study {study_uid}" if study is None else f"patient {study['patient_key']}, MRI {study['study_date']}"
    if study is None:
        return WriteBackPlan(study_uid, assessed_at, exam, options, writeback_dir,
                             failure="The study has no current segmentation to write back")
    stamp = assessed_at.isoformat()
    seg_key = "|".join(str(study[k] or "") for k in ("model_name", "model_version", "weights_sha256",
                                                     "config_sha256", "labels_path")) + f"|{options.segmentation_type}"
    current_seg = sql.current_object(store, study_uid, "SEG")
    reuse = (current_seg is not None and current_seg["content_key"] == seg_key
             and (writeback_dir / current_seg["file_path"]).is_file())
    seg_instance_uid = (str(current_seg["sop_instance_uid"]) if reuse and current_seg is not None
                        else derived_uid(study_uid, "SEG", seg_key, stamp, "instance"))
    content = load_report_content(store, study_uid)
    sr_key, write_sr, write_sc, priors = "", False, False, ()
    if content is not None:
        sr_key = content_digest(content, segmentation_uid=seg_instance_uid)
        current_sr = sql.current_object(store, study_uid, "SR")
        write_sr = current_sr is None or current_sr["content_key"] != sr_key
        if write_sr:
            priors = tuple(_prior_segs(store, uid, planned_seg, writeback_dir) for uid in content.prior_study_uids)
        current_sc = sql.current_object(store, study_uid, "SC") if options.key_image else None
        write_sc = options.key_image and (current_sc is None or current_sc["content_key"] != sr_key)
    return WriteBackPlan(
        study_uid, assessed_at, exam, options, writeback_dir, patient_key=str(study["patient_key"]), study=study,
        labels_file=paths.resolve(StoredFile.LABELS, study["labels_path"]), seg_key=seg_key,
        reuse_seg=str(current_seg["file_path"]) if reuse and current_seg is not None else None,
        seg_instance_uid=seg_instance_uid, content=content, sr_key=sr_key, write_sr=write_sr, write_sc=write_sc,
        prior_segs=priors, t1c=report_sql.t1c_series(store, study_uid))


def _prior_segs(store: Store, study_uid: str, planned_seg: dict[str, str], writeback_dir: Path) -> tuple[str, ...]:
    stored = sql.current_object(store, study_uid, "SEG")
    files = [planned_seg[study_uid]] if study_uid in planned_seg else []
    if stored is not None and (writeback_dir / stored["file_path"]).is_file():
        files.append(str(stored["file_path"]))
    return tuple(files)


def _seg_file(plan: WriteBackPlan) -> str:
    series_uid = derived_uid(plan.study_uid, "SEG", plan.seg_key, plan.stamp)
    return f"{plan.patient_key}/{plan.study_uid}/SEG_{series_uid}.dcm"


def execute_write_back(plan: WriteBackPlan, archive: Archive) -> WriteBackExecution:
    """Phase 2: build the objects that changed, save each under ``writeback_dir`` and upload it.
    Reads the labels, the T1c's headers (from the archive) and earlier SEG files, not the store,
    so it may run on another thread than the store's writer. A non-retryable
    :class:`GlioWatchError` becomes the execution's ``failure``; a retryable one propagates."""
    if plan.failure:
        return WriteBackExecution(plan, failure=plan.failure)
    try:
        pending = _build(plan, archive)
    except GlioWatchError as exc:
        if exc.retryable:
            raise
        return WriteBackExecution(plan, failure=exc.reason)
    (plan.writeback_dir / plan.patient_key / plan.study_uid).mkdir(parents=True, exist_ok=True)
    written = []
    for kind, dataset, key, relative in pending:
        path = plan.writeback_dir / relative
        tmp = path.with_suffix(".tmp")
        dataset.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
        ids = archive.upload_file(path)
        written.append(WrittenObject(kind, str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID), key,
                                     relative, ids[0] if ids else None))
    return WriteBackExecution(plan, written=tuple(written))


def record_write_back(store: Store, archive: Archive, execution: WriteBackExecution) -> WriteBackOutcome:
    """Phase 3: commit the written objects and the study's status in one transaction (or record
    the failure), then delete superseded objects from the archive when configured."""
    plan = execution.plan
    if execution.failure:
        log.warning("write-back of %s failed: %s", plan.exam, execution.failure)
        return record_failure(store, plan.study_uid, assessed_at=plan.assessed_at, reason=execution.failure)
    with store.transaction() as con:
        for o in execution.written:
            sql.record_object(con, series_uid=o.series_uid, sop_instance_uid=o.sop_instance_uid,
                              study_uid=plan.study_uid, patient_key=plan.patient_key, kind=o.kind,
                              content_key=o.content_key, file_path=o.file_path, archive_instance_id=o.archive_instance_id)
        sql.set_status(con, study_uid=plan.study_uid, status="WRITTEN", reason=None, assessed_at=plan.assessed_at)
    deleted = _delete_superseded(store, archive, plan.study_uid) if plan.options.delete_superseded else []
    message = f"{plan.exam}: {len(execution.written)} object(s) written, {len(deleted)} superseded deleted"
    return WriteBackOutcome(plan.study_uid, True, message, tuple(o.series_uid for o in execution.written),
                            tuple(deleted))


def _build(plan: WriteBackPlan, archive: Archive) -> list[tuple[str, Any, str, str]]:
    """The objects to write: (kind, dataset, content key, file relative to writeback_dir)."""
    study, exam, stamp = plan.study, plan.exam, plan.stamp
    labels = read_nifti(plan.labels_file)
    pending: list[tuple[str, Any, str, str]] = []
    sources = None
    if plan.reuse_seg is not None:
        seg = pydicom.dcmread(plan.writeback_dir / plan.reuse_seg, stop_before_pixels=True)
    else:
        sources = _t1c_headers(archive, plan)
        seg = build_segmentation(
            sources, labels, model_name=str(study["model_name"])[:64], model_version=str(study["model_version"])[:64],
            weights_sha256=str(study["weights_sha256"]), config_sha256=study["config_sha256"] or None,
            series_number=SEG_SERIES_NUMBER, series_uid=derived_uid(plan.study_uid, "SEG", plan.seg_key, stamp),
            sop_instance_uid=plan.seg_instance_uid, segmentation_type=plan.options.segmentation_type, exam=exam)
        pending.append(("SEG", seg, plan.seg_key, _seg_file(plan)))
    content = plan.content
    if content is None:
        return pending
    if plan.write_sr:
        sources = sources or _t1c_headers(archive, plan)
        prior = [pydicom.dcmread(plan.writeback_dir / files[0], stop_before_pixels=True)
                 for candidates in plan.prior_segs
                 if (files := [f for f in candidates if (plan.writeback_dir / f).is_file()])]
        sr = build_report(content, t1c_datasets=sources, segmentation=seg, prior_evidence=prior,
                          series_uid=derived_uid(plan.study_uid, "SR", plan.sr_key, stamp),
                          sop_instance_uid=derived_uid(plan.study_uid, "SR", plan.sr_key, stamp, "instance"),
                          series_number=SR_SERIES_NUMBER, device_uid=derived_uid("GlioWatch", "device"))
        pending.append(("SR", sr, plan.sr_key, f"{plan.patient_key}/{plan.study_uid}/SR_{sr.SeriesInstanceUID}.dcm"))
    if plan.write_sc:
        sources = sources or _t1c_headers(archive, plan)
        pending += _key_image(content, sources, labels, sr_key=plan.sr_key, stamp=stamp, exam=exam)
    return pending


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


def _t1c_headers(archive: Archive, plan: WriteBackPlan) -> list[Any]:
    """The T1c series' instances (the SEG's and SR's source images), fetched as one series
    (``Archive.fetch_series``: one DICOMweb response from Orthanc), in instance-number order."""
    series = plan.t1c
    if series is None or not series["archive_series_id"] or not series["archive_study_id"]:
        raise WriteBackError("The study's post-contrast T1 series is not known in the archive", exam=plan.exam,
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
