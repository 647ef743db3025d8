"""The compute parts of the per-study pipeline: segmentation, then registration into the
patient's baseline space. No store here: these run anywhere (a thread, a Dask worker with a GPU).

Each step has three parts so the heavy middle can run anywhere while the flow process stays the
only DuckDB writer:

- the use case (``engine.usecases.segment_study`` / ``register_study``) reads what the step
  needs from the store into a small picklable job (:class:`StudyFiles`, :class:`RegistrationJob`);
- ``compute_*(job, ...)`` here does the work from files under the shared state dir and writes its
  output files (atomically, at paths that depend only on UIDs and the model), returning a small
  picklable output (never an exception for bad input: the failure travels as ``error``);
- the use case's ``commit_*(store, job, output)`` records the rows and the study's new status in
  one transaction.

A crash between the parts leaves the study in its last committed status; the step runs again.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.dicom.nifti import read_nifti, write_nifti
from engine.errors import RegistrationError, SegmentationError
from engine.registration import QcThresholds, Registrar, RegistrationResult, Stage, resample_to
from engine.registration.compose import composed_result
from engine.registration.masks import DEFAULT_EXCLUSION_MARGIN_MM
from engine.registration.reference import reference_sequence
from engine.segmentation import SegmentationResult, Segmenter
from engine.state_paths import StatePaths, StoredFile
from engine.types import SegmentationOutput, Sequence, Volume


@dataclass(frozen=True, slots=True)
class StageOutcome:
    study_uid: str
    stage: str
    ok: bool
    message: str
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StudyFiles:
    """One study as the compute parts see it: ids, the exam label and relative file paths."""

    study_uid: str
    patient_key: str
    exam: str
    volumes: dict[str, str]  # sequence -> stored path (StoredFile.VOLUME)
    labels: str | None = None  # current segmentation, stored path (StoredFile.LABELS)


def _load_volumes(files: StudyFiles, paths: StatePaths) -> dict[Sequence, Volume]:
    return {Sequence(seq): read_nifti(paths.resolve(StoredFile.VOLUME, rel)) for seq, rel in files.volumes.items()}


def _read_labels(files: StudyFiles, paths: StatePaths) -> Volume | None:
    return read_nifti(paths.resolve(StoredFile.LABELS, files.labels)) if files.labels else None


# ---------------------------------------------------------------- segmentation


def file_name_part(text: str) -> str:
    """``text`` safe as part of one file name on any file system: runs of characters other than
    letters, digits, ``.``, ``_`` and ``-``, and runs of dots, become one ``-``; leading and
    trailing dots and dashes go. A bundle's name (``bundle:DIR``) and ``version`` come from the
    bundle's files, so a ``/`` or ``..`` there must not move the file out of its study's folder.

    >>> file_name_part("bundle:brats mri"), file_name_part("../../x"), file_name_part("0.3.1"), file_name_part("//")
    ('bundle-brats-mri', 'x', '0.3.1', 'unnamed')
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+|\.{2,}", "-", text)
    cleaned = re.sub(r"-{2,}", "-", cleaned).strip(".-")
    return cleaned or "unnamed"


def labels_file_name(result: SegmentationResult) -> str:
    """``labels_<model>_<version>_<weights hash[:8]>_<config hash[:8]>.nii.gz``: every part of the
    model identity the store keys on, so a superseded row's file is never overwritten by another
    model, version, weights or config. Name and version through :func:`file_name_part`; the
    store and the JSON sidecar keep them as they are."""
    return (f"labels_{file_name_part(result.model_name)}_{file_name_part(result.model_version)}_"
            f"{file_name_part(result.weights_sha256[:8])}_{file_name_part(result.config_sha256[:8])}.nii.gz")


def sidecar_path(labels_path: Path) -> Path:
    """The JSON beside a label NIfTI: same stem, ``.json``."""
    return labels_path.with_name(labels_path.name.removesuffix(".nii.gz").removesuffix(".nii") + ".json")


def segmentation_sidecar(result: SegmentationResult, files: StudyFiles) -> dict[str, Any]:
    """What the label volume alone does not say: the model identity, device, flags, mL per label
    and the label volume's metadata (reference sequence, alignment decisions, test-time flips).
    Pseudonymous ids only (the ones in the file's path), no exam date."""
    return {
        "study_uid": files.study_uid,
        "patient_key": files.patient_key,
        **result.provenance(),
        "flags": list(result.flags),
        "volumes_ml": dict(result.volumes_ml),
        "metadata": dict(result.labels.metadata),
    }


def _write_json_atomic(data: dict[str, Any], path: Path) -> None:
    """Write under a temporary name in the same folder, then ``os.replace`` (as write_nifti)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def compute_segmentation(files: StudyFiles, *, segmenter: Segmenter, paths: StatePaths) -> SegmentationOutput:
    """Segment one study from its NIfTI volumes; write the label volume and its JSON sidecar."""
    try:
        result = segmenter.segment(_load_volumes(files, paths), exam=files.exam)
    except SegmentationError as exc:
        return SegmentationOutput(files.study_uid, error=exc.reason, error_detail=exc.detail)
    rel = Path(files.patient_key) / files.study_uid / labels_file_name(result)
    target = paths.resolve(StoredFile.LABELS, rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(result.labels, target, force=True)
    _write_json_atomic(segmentation_sidecar(result, files), sidecar_path(target))
    return SegmentationOutput(
        study_uid=files.study_uid, labels_path=paths.stored(StoredFile.LABELS, target),
        volumes_ml=dict(result.volumes_ml),
        flags=tuple(result.flags), model_name=result.model_name, model_version=result.model_version,
        weights_sha256=result.weights_sha256, config_sha256=result.config_sha256, device=result.device,
        elapsed_s=result.elapsed_s,
    )


# ---------------------------------------------------------------- registration


@dataclass(frozen=True, slots=True)
class RegistrationJob:
    moving: StudyFiles
    fixed: StudyFiles | None  # None: the study is its own reference (the patient's baseline)
    kind: str  # 'baseline' or 'previous'
    reference_sequence: str = "T1c"
    #: a matrix (moving -> fixed, RAS mm) composed from stored registrations: checked, not optimised
    #: (:mod:`engine.registration.compose`); ``composed_method`` says what it was composed from
    composed: tuple[tuple[float, ...], ...] | None = None
    composed_method: str = ""


@dataclass(frozen=True, slots=True)
class RegistrationOutput:
    study_uid: str
    kind: str
    reference_study_uid: str
    result: RegistrationResult | None = None
    resampled: dict[str, str] | None = None
    error: str = ""
    error_detail: str | None = None


def _reference_sequence(sequences: Iterable[Sequence], preferred: str) -> Sequence:
    seq = reference_sequence(sequences, preferred)
    if seq is not None:
        return seq
    raise RegistrationError("Neither a T1c nor a T1 series is available to register",
                            action="Check the series classification of this study.")


def _reference_image(files: StudyFiles, paths: StatePaths, preferred: str) -> Volume:
    """The one volume a registration aligns (read alone)."""
    seq = _reference_sequence((Sequence(s) for s in files.volumes), preferred)
    return read_nifti(paths.resolve(StoredFile.VOLUME, files.volumes[seq.value]))


def compute_registration(job: RegistrationJob, *, registrar: Registrar, paths: StatePaths) -> RegistrationOutput:
    """Register (or check a composed matrix, ``job.composed``); for the baseline, resample the
    labels (nearest) into the baseline's reference grid and write them under ``registered_dir``:
    the measurements read them there. The images are not resampled here: the matrix is stored, and
    the dashboard resamples a sequence into the baseline's grid when a reader opens it (the
    pipeline wrote four resampled images per study before, ~3.6 CPU-s per study, read only by the
    image review)."""
    moving_files = job.moving
    if job.fixed is None:
        return RegistrationOutput(moving_files.study_uid, job.kind, moving_files.study_uid)
    try:
        fixed = _reference_image(job.fixed, paths, job.reference_sequence)
        moving = _reference_image(moving_files, paths, job.reference_sequence)
        fixed_labels = _read_labels(job.fixed, paths)
        moving_labels = _read_labels(moving_files, paths)
        if job.composed is not None:
            result = composed_result(
                fixed=fixed, moving=moving, fixed_mask=fixed_labels, moving_mask=moving_labels,
                matrix=np.asarray(job.composed, dtype=float), method=job.composed_method,
                thresholds=getattr(registrar, "thresholds", QcThresholds()),
                margin_mm=getattr(registrar, "margin_mm", DEFAULT_EXCLUSION_MARGIN_MM),
                stage=getattr(registrar, "stage", Stage.RIGID))
        else:
            result = registrar.register(fixed=fixed, moving=moving, fixed_mask=fixed_labels,
                                        moving_mask=moving_labels)
    except RegistrationError as exc:
        return RegistrationOutput(moving_files.study_uid, job.kind, job.fixed.study_uid, error=exc.reason,
                                  error_detail=exc.detail)
    if job.kind != "baseline" or not result.passed:
        return RegistrationOutput(moving_files.study_uid, job.kind, job.fixed.study_uid, result=result)
    if moving_labels is None:
        return RegistrationOutput(moving_files.study_uid, job.kind, job.fixed.study_uid, result=result, resampled={})
    out_dir = paths.resolve(StoredFile.REGISTERED, Path(moving_files.patient_key) / moving_files.study_uid)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = _as_source_dtype(resample_to(reference=fixed, moving=moving_labels, matrix=result.matrix,
                                          interpolation="nearest"), moving_labels.array.dtype)
    target = out_dir / "labels.nii.gz"
    write_nifti(labels, target, force=True)
    return RegistrationOutput(moving_files.study_uid, job.kind, job.fixed.study_uid, result=result,
                              resampled={"labels": paths.stored(StoredFile.REGISTERED, target)})


def _as_source_dtype(volume: Volume, dtype: np.dtype) -> Volume:
    """A resampled integer volume back in its own integer type (rounded, clipped), as
    registration toolkits write it (a label map stays a label map on disk)."""
    if not np.issubdtype(dtype, np.integer) or volume.array.dtype == dtype:
        return volume
    info = np.iinfo(dtype)
    array = np.clip(np.rint(volume.array), info.min, info.max).astype(dtype)
    return Volume(array=array, affine=volume.affine, metadata=volume.metadata)


def qc_text(result: RegistrationResult) -> str:
    verdict = "passed" if result.passed else "FAILED"
    return (f"{verdict} (rotation {result.rotation_deg:.1f} deg, translation {result.translation_mm:.1f} mm, "
            f"similarity {result.similarity:.3f}, {result.method}, {result.elapsed_s:.1f} s)")
