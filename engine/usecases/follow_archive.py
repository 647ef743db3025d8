"""Use case ``follow_archive``: the archive's change feed into the store, exactly once,
restart-safe (:func:`run_cycle`, one pass over the feed; :func:`run_backfill`, what the archive
already holds). Each stable study goes through the ``ingest`` it is given (the flow passes
:func:`engine.usecases.ingest_study.ingest_study` as a Prefect task) and is recorded here.

Invariant: a study's rows and the cursor position past its change commit in one DuckDB
transaction. Killed anywhere, a restart re-reads from the last committed cursor; a study whose
rows were committed is recognised (same UID, same instance count) and skipped, so nothing is lost
and nothing is stored twice. The archive's change rows vanish when it deletes or recycles
resources, so a reconciliation sweep compares the archive's study list with the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from engine.archive import Archive, StudyInfo
from engine.archive.protocol import STABLE_STUDY
from engine.errors import ArchiveError
from engine.ingest import IngestedStudy, parse_dicom_date
from engine.store import Store
from engine.store import ingest as sql
from engine.store import writeback as writeback_sql

log = logging.getLogger("gliowatch.stream")

IngestFn = Callable[[str], IngestedStudy]


@dataclass(slots=True)
class CycleReport:
    cursor_before: int = 0
    cursor_after: int = 0
    stable_seen: int = 0
    ingested: list[str] = field(default_factory=list)  # study UIDs
    quarantined: list[str] = field(default_factory=list)
    skipped: int = 0
    reconciled: int = 0
    not_yet_stable: int = 0  # left by a sweep to their StableStudy change (instances still arriving)

    def summary(self) -> str:
        waiting = f", {self.not_yet_stable} not yet stable" if self.not_yet_stable else ""
        return (f"cursor {self.cursor_before} -> {self.cursor_after}: {self.stable_seen} stable studies, "
                f"{len(self.ingested)} ingested, {len(self.quarantined)} quarantined, "
                f"{self.skipped} already known, {self.reconciled} by reconciliation{waiting}")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def run_cycle(
    *,
    archive: Archive,
    store: Store,
    ingest: IngestFn,
    batch_size: int = 200,
    reconcile: bool = False,
) -> CycleReport:
    """Drain the change feed once (and optionally reconcile). Raises only retryable errors."""
    report = CycleReport(cursor_before=sql.get_cursor(store))
    cursor = report.cursor_before
    while True:
        batch = archive.changes(since=cursor, limit=batch_size)
        for change in batch.changes:
            if change.change_type == STABLE_STUDY:
                report.stable_seen += 1
                _handle_study(archive, store, change.resource_id, change.seq, ingest, report)
            cursor = change.seq
        if batch.last > report.cursor_before or batch.changes:
            with store.transaction() as con:
                sql.set_cursor(con, max(batch.last, cursor))
            cursor = max(batch.last, cursor)
        if batch.done or not batch.changes:
            break
    if reconcile:
        known = sql.known_archive_study_ids(store)
        for study_id in sorted(set(archive.list_studies()) - known):
            if _handle_study(archive, store, study_id, None, ingest, report, sweep=True):
                report.reconciled += 1
    report.cursor_after = sql.get_cursor(store)
    return report


def run_backfill(
    *,
    archive: Archive,
    store: Store,
    ingest: IngestFn,
    since: date | None = None,
    patient_key: str | None = None,
    key_of: Callable[[str], str] | None = None,
) -> CycleReport:
    """Process what is already in the archive (optionally from a date / for one patient) through
    the same path as the live stream. Idempotent: known studies with unchanged content are skipped,
    and the cursor is not touched, so it runs safely beside a live watcher's feed."""
    report = CycleReport(cursor_before=sql.get_cursor(store))
    for study_id in archive.list_studies():
        try:
            info = archive.study(study_id)
        except ArchiveError as exc:
            if exc.retryable:
                raise
            _handle_study(archive, store, study_id, None, ingest, report)  # quarantined with the reason
            continue
        if since is not None:
            study_date = parse_dicom_date(info.study_date)
            if study_date is None or study_date < since:
                continue
        if patient_key is not None and key_of is not None and key_of(info.patient_id) != patient_key:
            continue
        if _handle_study(archive, store, study_id, None, ingest, report, sweep=True):
            report.stable_seen += 1
    report.cursor_after = sql.get_cursor(store)
    return report


def _handle_study(
    archive: Archive,
    store: Store,
    archive_study_id: str,
    change_seq: int | None,
    ingest: IngestFn,
    report: CycleReport,
    *,
    sweep: bool = False,
) -> bool:
    """Ingest one study (or skip / quarantine it); False only when a sweep (reconciliation,
    backfill) leaves a study still receiving instances to its StableStudy change."""
    seen_at = _utc_now()
    try:
        info = archive.study(archive_study_id)
        if sweep and not info.is_stable:
            report.not_yet_stable += 1
            return False
        if not _needs_ingest(archive, store, info):
            report.skipped += 1
            _advance(store, change_seq)
            return True
        result = ingest(archive_study_id)
    except ArchiveError as exc:
        if exc.retryable:
            raise
        log.warning("study %s could not be read from the archive: %s", archive_study_id, exc.message)
        with store.transaction() as con:
            sql.add_quarantine(con, stage="ingest", reason=exc.message, archive_study_id=archive_study_id,
                               detail=exc.detail)
            if change_seq is not None:
                sql.set_cursor(con, change_seq)
        report.quarantined.append(archive_study_id)
        return True
    with store.transaction() as con:
        revision = sql.record_study(con, result, change_seq=change_seq, seen_at=seen_at)
        if change_seq is not None:
            sql.set_cursor(con, change_seq)
    if result.quarantine_reason:
        log.warning("quarantined %s: %s", result.exam, result.quarantine_reason)
        report.quarantined.append(result.study_uid)
    else:
        log.info("ingested %s (revision %d): %s", result.exam, revision,
                 ", ".join(s.value for s in result.sequences))
        report.ingested.append(result.study_uid)
    return True


def _advance(store: Store, change_seq: int | None) -> None:
    if change_seq is None:
        return
    with store.transaction() as con:
        sql.set_cursor(con, change_seq)


def _needs_ingest(archive: Archive, store: Store, info: StudyInfo) -> bool:
    """New study, or one the archive has grown (more instances) since we recorded it.

    GlioWatch's own objects (the SEG and SR series the write-back step stored into the study,
    ``writeback_objects``) are not input: they are left out of both counts, so storing them, which
    re-stabilises the study in the archive, neither re-ingests it nor loops.
    """
    if sql.known_study(store, info.study_uid) is None:
        return True
    ours = writeback_sql.written_series_uids(store, info.study_uid)
    stored = writeback_sql.instance_count_without_writeback(store, info.study_uid) if ours else \
        sql.stored_instance_count(store, info.study_uid)
    archive_instances = 0
    for series_id in info.series_ids:
        series = archive.series(series_id)
        if series.series_uid not in ours:
            archive_instances += len(series.instance_ids)
    return archive_instances != int(stored)
