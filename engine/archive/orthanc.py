"""``OrthancArchive``: the Archive protocol over Orthanc's REST API (orthanc-api-client).

Orthanc 1.10.1 has no labels; work is marked with study metadata at a numeric index >= 1024.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from orthanc_api_client import OrthancApiClient
from orthanc_api_client import exceptions as oac

from engine.archive.dicomweb import SeriesFetcher
from engine.archive.protocol import ArchiveChange, ChangeBatch, SeriesInfo, StudyInfo
from engine.errors import ArchiveError, ArchiveUnavailableError

MARKER_METADATA = "1024"
T = TypeVar("T")


def _translated(func: Callable[..., T]) -> Callable[..., T]:
    """Turn the client's exceptions into the project's (unavailable = retryable)."""

    @wraps(func)
    def wrapper(self: OrthancArchive, *args: Any, **kwargs: Any) -> T:
        try:
            return func(self, *args, **kwargs)
        except (oac.ConnectionError, oac.TimeoutError) as exc:
            raise ArchiveUnavailableError(
                f"Orthanc at {self.url} is not reachable",
                action="The watcher retries; check that Orthanc runs (`gliowatch orthanc status`).",
                detail=str(exc),
            ) from exc
        except oac.ResourceNotFound as exc:
            raise ArchiveError(
                "A resource disappeared from Orthanc before it could be read",
                action="Nothing to do if it was deleted on purpose; the reconciliation sweep "
                "records what is left.",
                detail=str(exc),
            ) from exc
        except oac.HttpError as exc:
            raise ArchiveError(
                f"Orthanc refused a request (HTTP {exc.http_status_code})", detail=str(exc)
            ) from exc

    return wrapper


class OrthancArchive:
    """The project's Orthanc (or a hospital's), reached over HTTP with basic auth."""

    def __init__(self, url: str, *, username: str, password: str, timeout_s: float = 30.0,
                 use_dicomweb: bool | None = None) -> None:
        """``use_dicomweb``: None = whole series over DICOMweb when Orthanc has the plugin (asked
        once), False = always instance by instance over the REST API."""
        self.url = url
        self.client = OrthancApiClient(url, user=username, pwd=password)
        self.timeout_s = timeout_s
        self.fetcher = SeriesFetcher(url, username=username, password=password, timeout_s=timeout_s,
                                     use_dicomweb=use_dicomweb)

    @_translated
    def changes(self, *, since: int, limit: int) -> ChangeBatch:
        data = self.client.get_json(f"changes?since={int(since)}&limit={int(limit)}")
        rows = tuple(
            ArchiveChange(seq=int(c["Seq"]), change_type=str(c["ChangeType"]), resource_id=str(c["ID"]))
            for c in data.get("Changes", [])
        )
        return ChangeBatch(changes=rows, last=int(data.get("Last", since)), done=bool(data.get("Done", True)))

    @_translated
    def last_change(self) -> int:
        return int(self.client.get_json("changes?last").get("Last", 0))

    @_translated
    def list_studies(self) -> list[str]:
        return list(self.client.get_json("studies"))

    @_translated
    def study(self, archive_study_id: str) -> StudyInfo:
        data = self.client.get_json(f"studies/{archive_study_id}")
        tags = data.get("MainDicomTags", {})
        patient = data.get("PatientMainDicomTags", {})
        return StudyInfo(
            archive_study_id=archive_study_id,
            study_uid=str(tags.get("StudyInstanceUID", "")),
            patient_id=str(patient.get("PatientID", "")),
            study_date=str(tags.get("StudyDate", "")),
            series_ids=tuple(data.get("Series", [])),
            is_stable=bool(data.get("IsStable", True)),
        )

    @_translated
    def series(self, archive_series_id: str) -> SeriesInfo:
        data = self.client.get_json(f"series/{archive_series_id}")
        tags = data.get("MainDicomTags", {})
        return SeriesInfo(
            archive_series_id=archive_series_id,
            series_uid=str(tags.get("SeriesInstanceUID", "")),
            description=str(tags.get("SeriesDescription", "")),
            modality=str(tags.get("Modality", "")),
            instance_ids=tuple(data.get("Instances", [])),
        )

    @_translated
    def fetch_instance(self, instance_id: str) -> bytes:
        return self.client.instances.get_file(instance_id)

    def fetch_series(self, study: StudyInfo, series: SeriesInfo) -> Iterator[bytes]:
        """Every instance of ``series``, yielded as it arrives: one DICOMweb multipart response
        when Orthanc has the plugin, else one REST request per instance (``engine.archive.dicomweb``)."""
        return self.fetcher.series_files(study.study_uid, series.series_uid, series.instance_ids)

    @_translated
    def mark_study(self, archive_study_id: str, value: str) -> None:
        self.client.studies.set_string_metadata(archive_study_id, MARKER_METADATA, value)

    @_translated
    def upload_file(self, path: Path) -> list[str]:
        return list(self.client.upload_file(str(path)))

    @_translated
    def delete_instance(self, instance_id: str) -> None:
        """Delete one instance (a superseded write-back object; engine.writeback.step)."""
        self.client.instances.delete(orthanc_id=instance_id)

    @_translated
    def delete_everything(self) -> None:
        """Wipe the archive (tests and demo resets only)."""
        self.client.delete_all_content()
