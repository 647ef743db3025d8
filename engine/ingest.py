"""One stable study from the archive -> classified series and NIfTI volumes under the state dir.

Nothing here writes the store: the result is a value the flow records in one transaction together
with the cursor. Volume files are written first (atomically, at paths that depend only on the
UIDs), so a crash before the commit leaves files that the retry simply overwrites.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import numpy as np

from engine.archive import Archive, SeriesInfo, StudyInfo
from engine.dicom.nifti import write_nifti
from engine.dicom.reader import datasets_from_bytes
from engine.dicom.sop_classes import (
    NON_IMAGE_MODALITIES,
    SeriesObjects,
    describe_ignored,
    split_series_objects,
)
from engine.dicom.volume import assemble_volume
from engine.errors import GlioWatchError
from engine.pseudonym import patient_key as make_patient_key
from engine.series_choice import finest_per_sequence
from engine.series_rules import SeriesRules, classify_series, series_header
from engine.types import STUDY_SEQUENCES, Sequence

#: series of one study fetched and assembled at once (each one streamed: decode overlaps transfer)
SERIES_THREADS = 4
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestedSeries:
    series_uid: str
    archive_series_id: str
    description: str
    sequence: Sequence
    rule: str
    explanation: str
    n_instances: int
    status: str  # USED | UNUSED | REFUSED
    reason: str = ""
    plane: str = ""
    volume_path: str = ""  # relative to the volumes dir
    shape: tuple[int, ...] = ()
    spacing_mm: tuple[float, ...] = ()
    affine_ras: tuple[tuple[float, ...], ...] = ()
    voxel_mm3: float = 0.0


@dataclass(frozen=True, slots=True)
class IngestedStudy:
    archive_study_id: str
    study_uid: str
    patient_key: str
    study_date: date | None
    series: tuple[IngestedSeries, ...]
    quarantine_reason: str = ""
    elapsed_s: float = 0.0

    @property
    def exam(self) -> str:
        return exam_label(self.patient_key, self.study_date)

    @property
    def sequences(self) -> tuple[Sequence, ...]:
        return tuple(s for s in STUDY_SEQUENCES if any(x.sequence == s and x.status == "USED" for x in self.series))

    @property
    def missing_sequences(self) -> tuple[Sequence, ...]:
        found = set(self.sequences)
        return tuple(s for s in STUDY_SEQUENCES if s not in found)


def exam_label(patient_key: str, study_date: date | None) -> str:
    """How people name an exam: pseudonymous key + scan date (never a name)."""
    return f"patient {patient_key}, MRI {study_date.isoformat() if study_date else 'date unknown'}"


def parse_dicom_date(value: str) -> date | None:
    try:
        return datetime.strptime(value.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def ingest_study(
    archive: Archive,
    archive_study_id: str,
    *,
    rules: SeriesRules,
    volumes_dir: Path,
    key_salt: str,
    max_instances: int = 2000,
) -> IngestedStudy:
    """Fetch, classify and assemble every series of one study; never raises for bad DICOM."""
    started = time.perf_counter()
    info = archive.study(archive_study_id)
    key = make_patient_key(info.patient_id or f"unknown:{info.study_uid}", salt=key_salt)
    study_date = parse_dicom_date(info.study_date)
    exam = exam_label(key, study_date)

    def one_series(series_id: str) -> IngestedSeries:
        return _ingest_series(archive, info, archive.series(series_id), exam=exam, rules=rules,
                              volumes_dir=volumes_dir, patient_key=key, max_instances=max_instances)

    with ThreadPoolExecutor(max_workers=SERIES_THREADS) as pool:  # archive errors re-raised here
        series = _pick_one_per_sequence(list(pool.map(one_series, info.series_ids)))
    result = IngestedStudy(
        archive_study_id=archive_study_id,
        study_uid=info.study_uid,
        patient_key=key,
        study_date=study_date,
        series=tuple(series),
    )
    reason = ""
    if not result.sequences:
        why = [s.reason or f"series '{s.description}' ({s.series_uid}): {s.explanation or 'not used'}"
               for s in series]
        reason = "No usable T1, T1c, T2 or FLAIR series" + (f" ({'; '.join(why)})" if why else " (no series)")
    return replace(result, quarantine_reason=reason, elapsed_s=time.perf_counter() - started)


def _ingest_series(
    archive: Archive,
    info: StudyInfo,
    meta: SeriesInfo,
    *,
    exam: str,
    rules: SeriesRules,
    volumes_dir: Path,
    patient_key: str,
    max_instances: int,
) -> IngestedSeries:
    base = dict(
        series_uid=meta.series_uid,
        archive_series_id=meta.archive_series_id,
        description=meta.description,
        n_instances=len(meta.instance_ids),
    )
    label = f"series '{meta.description}' ({meta.series_uid})"
    # a series whose archive Modality is SEG, SR, PR ... is fetched: the archive may have taken
    # it from a non-image object stored in an MR series, and split_series_objects decides.
    if meta.modality and meta.modality != "MR" and meta.modality not in NON_IMAGE_MODALITIES:
        return IngestedSeries(**base, sequence=Sequence.OTHER, rule="modality",
                              explanation=f"Modality {meta.modality} is not MR", status="UNUSED")
    if len(meta.instance_ids) > max_instances:
        return IngestedSeries(**base, sequence=Sequence.OTHER, rule="size", explanation="",
                              status="REFUSED",
                              reason=f"{label} has {len(meta.instance_ids)} instances (limit {max_instances})")
    try:
        objects = fetch_series_objects(archive, info, meta)
        left_out = describe_ignored(objects.ignored)
        if not objects.images:
            return IngestedSeries(**base, sequence=Sequence.OTHER, rule="non-image",
                                  explanation=f"no image: {left_out} left out", status="UNUSED")
        cls = classify_series(series_header(objects.images[0]), rules)
        if left_out:
            cls = replace(cls, explanation=f"{cls.explanation}; {left_out} left out (not images)")
        if cls.sequence == Sequence.OTHER:
            return IngestedSeries(**base, sequence=cls.sequence, rule=cls.rule,
                                  explanation=cls.explanation, status="UNUSED")
        volume = assemble_volume(objects.images, exam=exam)
        rel = Path(patient_key) / info.study_uid / f"{cls.sequence.value}_{meta.series_uid}.nii.gz"
        target = volumes_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name.replace(".nii.gz", ".tmp.nii.gz"))
        write_nifti(volume, tmp, force=True)
        tmp.replace(target)
    except GlioWatchError as exc:
        if exc.retryable:
            raise
        return IngestedSeries(**base, sequence=Sequence.OTHER, rule="refused", explanation="",
                              status="REFUSED", reason=f"{label}: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - the edge for bad input: one odd file must not stop the stream
        return IngestedSeries(**base, sequence=Sequence.OTHER, rule="refused", explanation="",
                              status="REFUSED",
                              reason=f"{label}: could not be read (unexpected {type(exc).__name__}; the "
                                     "message is withheld because it may quote header values)")
    spacing = volume.spacing_mm
    return IngestedSeries(
        **base,
        sequence=cls.sequence,
        rule=cls.rule,
        explanation=cls.explanation,
        status="USED",
        plane=str(volume.metadata.get("acquisition_plane", "")),
        volume_path=str(rel),
        shape=tuple(int(v) for v in volume.array.shape),
        spacing_mm=tuple(round(float(v), 4) for v in spacing),
        affine_ras=tuple(tuple(float(x) for x in row) for row in np.asarray(volume.affine)),
        voxel_mm3=float(np.prod(spacing)),
    )


def fetch_series_objects(archive: Archive, info: StudyInfo, meta: SeriesInfo) -> SeriesObjects:
    """Download every instance of a series, parsing each as it arrives, and set its non-image
    objects apart (logged)."""
    datasets = datasets_from_bytes(archive.fetch_series(info, meta))
    if len(datasets) != len(meta.instance_ids):
        log.info("series %s: %d instances listed, %d received (the series changed meanwhile)",
                 meta.series_uid, len(meta.instance_ids), len(datasets))
    objects = split_series_objects(datasets)
    if objects.ignored:
        log.info("series %s: left out %s (not images)", meta.series_uid,
                 describe_ignored(objects.ignored))
    return objects


def _pick_one_per_sequence(series: list[IngestedSeries]) -> list[IngestedSeries]:
    """Several series of one sequence: keep the finest voxels (``engine.series_choice``), mark the
    others UNUSED with why."""
    used = [s for s in series if s.status == "USED"]
    winners = {seq: used[i] for seq, i in finest_per_sequence(
        (s.sequence, s.voxel_mm3, s.series_uid) for s in used).items()}
    out = []
    for s in series:
        best = winners.get(s.sequence)
        if s.status == "USED" and best is not None and s is not best:
            s = replace(s, status="UNUSED",
                        reason=f"another {s.sequence.value} series ({best.description}) has finer voxels "
                               f"({best.voxel_mm3:.2f} vs {s.voxel_mm3:.2f} mm3)")
        out.append(s)
    return out
