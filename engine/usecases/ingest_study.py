"""Use case ``ingest_study(archive_study_id)``: one stable study from the archive into classified
series and NIfTI volumes under the state dir (``engine.ingest`` does the work).

Nothing is written to the store here: the stream (``engine.usecases.follow_archive``) records the returned
:class:`~engine.ingest.IngestedStudy` in one transaction together with its cursor position, so a
crash between the two never loses or doubles a study.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine import ingest
from engine.archive import Archive
from engine.ingest import IngestedStudy
from engine.series_rules import SeriesRules


@dataclass(frozen=True, slots=True)
class IngestSources:
    """What ingestion reads and where it writes, built once by the composition root."""

    archive: Archive
    rules: SeriesRules
    volumes_dir: Path
    key_salt: str
    max_instances: int = 2000


def ingest_study(archive_study_id: str, *, sources: IngestSources) -> IngestedStudy:
    """Fetch, classify and assemble every series of one study; never raises for bad DICOM."""
    return ingest.ingest_study(sources.archive, archive_study_id, rules=sources.rules,
                               volumes_dir=sources.volumes_dir, key_salt=sources.key_salt,
                               max_instances=sources.max_instances)
