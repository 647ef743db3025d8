"""``FolderArchive``: a folder of DICOM files served through the Archive protocol (offline replays).

Studies appear in the change feed as one ``StableStudy`` each, ordered by study date, so a replay
walks a cohort in visit order. Archive ids are the DICOM UIDs; instance ids are relative paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from engine.archive.protocol import STABLE_STUDY, ArchiveChange, ChangeBatch, SeriesInfo, StudyInfo
from engine.errors import ArchiveError


@dataclass(slots=True)
class _Index:
    studies: dict[str, StudyInfo] = field(default_factory=dict)
    series: dict[str, SeriesInfo] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


class FolderArchive:
    """Read-only view of a DICOM folder tree, plus ``upload_file`` that copies into it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            msg = f"Argument 'root' must be an existing folder, got {root}"
            raise ValueError(msg)
        self._index = self._scan()
        self.marks: dict[str, str] = {}

    def _scan(self) -> _Index:
        studies: dict[str, dict] = {}
        series: dict[str, dict] = {}
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError):
                continue
            study_uid = str(getattr(ds, "StudyInstanceUID", ""))
            series_uid = str(getattr(ds, "SeriesInstanceUID", ""))
            if not study_uid or not series_uid:
                continue
            st = studies.setdefault(
                study_uid,
                {"patient_id": str(getattr(ds, "PatientID", "")),
                 "date": str(getattr(ds, "StudyDate", "")), "series": []},
            )
            if series_uid not in series:
                st["series"].append(series_uid)
                series[series_uid] = {
                    "description": str(getattr(ds, "SeriesDescription", "")),
                    "modality": str(getattr(ds, "Modality", "")),
                    "instances": [],
                }
            series[series_uid]["instances"].append(str(path.relative_to(self.root)))
        index = _Index()
        for uid, s in series.items():
            index.series[uid] = SeriesInfo(uid, uid, s["description"], s["modality"], tuple(s["instances"]))
        for uid, st in studies.items():
            index.studies[uid] = StudyInfo(uid, uid, st["patient_id"], st["date"], tuple(st["series"]))
        index.order = sorted(studies, key=lambda u: (studies[u]["date"], studies[u]["patient_id"], u))
        return index

    def changes(self, *, since: int, limit: int) -> ChangeBatch:
        rows = [
            ArchiveChange(seq=i + 1, change_type=STABLE_STUDY, resource_id=uid)
            for i, uid in enumerate(self._index.order)
        ]
        picked = tuple(r for r in rows if r.seq > since)[:limit]
        last = picked[-1].seq if picked else max(since, 0)
        return ChangeBatch(changes=picked, last=last, done=last >= len(rows))

    def last_change(self) -> int:
        return len(self._index.order)

    def list_studies(self) -> list[str]:
        return list(self._index.order)

    def study(self, archive_study_id: str) -> StudyInfo:
        try:
            return self._index.studies[archive_study_id]
        except KeyError as exc:
            raise ArchiveError(f"Study {archive_study_id} is not in {self.root}") from exc

    def series(self, archive_series_id: str) -> SeriesInfo:
        try:
            return self._index.series[archive_series_id]
        except KeyError as exc:
            raise ArchiveError(f"Series {archive_series_id} is not in {self.root}") from exc

    def fetch_instance(self, instance_id: str) -> bytes:
        return (self.root / instance_id).read_bytes()

    def fetch_series(self, study: StudyInfo, series: SeriesInfo) -> Iterator[bytes]:
        return (self.fetch_instance(i) for i in series.instance_ids)

    def mark_study(self, archive_study_id: str, value: str) -> None:
        self.marks[archive_study_id] = value

    def upload_file(self, path: Path) -> list[str]:
        target = self.root / "uploaded" / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        self._index = self._scan()
        return [str(target.relative_to(self.root))]
