"""The ``Archive`` protocol and its value types."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

STABLE_STUDY = "StableStudy"


@dataclass(frozen=True, slots=True)
class ArchiveChange:
    """One row of the archive's change feed."""

    seq: int
    change_type: str  # Orthanc's ChangeType, e.g. "StableStudy"
    resource_id: str  # the archive's own id of the resource (Orthanc's hash)


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    changes: tuple[ArchiveChange, ...]
    last: int  # position to ask from next time (exclusive)
    done: bool  # True when no more changes are waiting


@dataclass(frozen=True, slots=True)
class StudyInfo:
    archive_study_id: str
    study_uid: str
    patient_id: str  # the archive's PatientID: may be PHI, never logged; hashed into patient_key
    study_date: str  # DICOM DA "YYYYMMDD" or ""
    series_ids: tuple[str, ...]
    # False while instances are still arriving (Orthanc's IsStable: no new instance for StableAge);
    # sweeps (reconciliation, backfill) leave such a study to its StableStudy change.
    is_stable: bool = True


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    archive_series_id: str
    series_uid: str
    description: str
    modality: str
    instance_ids: tuple[str, ...]


class Archive(Protocol):
    """What the ingestion stream needs from an image archive."""

    def changes(self, *, since: int, limit: int) -> ChangeBatch: ...

    def last_change(self) -> int: ...

    def list_studies(self) -> list[str]: ...

    def study(self, archive_study_id: str) -> StudyInfo: ...

    def series(self, archive_series_id: str) -> SeriesInfo: ...

    def fetch_instance(self, instance_id: str) -> bytes: ...

    def fetch_series(self, study: StudyInfo, series: SeriesInfo) -> Iterable[bytes]:
        """Every instance of ``series`` as DICOM Part 10 bytes, in any order, as they arrive."""
        ...

    def mark_study(self, archive_study_id: str, value: str) -> None: ...

    def upload_file(self, path: Path) -> list[str]: ...
