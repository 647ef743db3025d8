"""Prefect flows of the stream: one watch cycle, and the per-study processing it triggers.

Thin composition over the use cases (``engine.usecases``) and the stream loop (``engine.usecases.follow_archive``),
with the collaborators of :class:`flows.runtime.Runtime`: the flow process is the single DuckDB
writer; the record of what was processed lives in DuckDB, not in Prefect's state (a SIGKILLed run
stays RUNNING on Prefect's side, stack-notes), so restarts are safe whatever Prefect remembers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect import flow, task
from prefect.cache_policies import NONE as NO_CACHE

from engine.errors import GlioWatchError
from engine.ingest import IngestedStudy
from engine.store import publish_snapshot
from engine.store import ingest as sql
from engine.usecases.follow_archive import CycleReport, run_cycle
from engine.usecases.ingest_study import IngestSources, ingest_study
from flows.watch_retry import retry_if_retryable

if TYPE_CHECKING:
    from flows.runtime import Runtime


log = logging.getLogger("gliowatch.flows")


@task(name="ingest-study", retries=3, retry_delay_seconds=[2, 5, 15],
      retry_condition_fn=retry_if_retryable, cache_policy=NO_CACHE)
def ingest_study_task(sources: IngestSources, archive_study_id: str) -> IngestedStudy:
    return ingest_study(archive_study_id, sources=sources)


@flow(name="gliowatch-watch-cycle", log_prints=False, validate_parameters=False)
def watch_cycle(rt: Runtime, reconcile: bool = False) -> CycleReport:
    """Drain the archive's change feed once, ingest each stable study, publish the snapshot if the
    store changed."""
    from flows.process import process_pending, run_processing

    try:
        process_pending(rt)
        report = run_cycle(
            archive=rt.archive,
            store=rt.store,
            ingest=lambda study_id: ingest_study_task(rt.ingest_sources, study_id),
            batch_size=rt.settings.watcher.changes_batch,
            reconcile=reconcile,
        )
    except GlioWatchError as exc:
        with rt.store.transaction() as con:
            sql.log_event(con, "error", exc.reason)
        if exc.retryable:  # archive down: alerts already committed still go out this cycle
            deliver_alerts(rt)
        raise
    run_processing(rt, report.ingested)  # the studies committed this cycle, not quarantined
    apply_board_actions(rt)
    deliver_alerts(rt)
    with rt.store.transaction(visible=False) as con:  # no reader is shown the cycle line
        sql.log_event(con, "cycle", report.summary())
    publication = publish_snapshot(rt.store, rt.settings.snapshot_path)
    log.debug("snapshot %s: %s", "published" if publication.published else "kept", publication.reason)
    return report


def apply_board_actions(rt: Runtime) -> None:
    """Tumour-board requests queued by the dashboard (which never opens the store), applied by the
    one writer, oldest first, exactly once per request id, with audit rows; the snapshot published
    at the end of the cycle shows them."""
    from engine.store.board_requests import requests_dir
    from engine.usecases.apply_board_request import apply_board_requests

    applied = apply_board_requests(rt.store, requests_dir(rt.settings.state_dir))
    for name, reason in applied.failed:
        log.warning("board request %s failed: %s", name, reason)
    if applied.patients_to_reassess:
        from flows.process import reassess_patients

        reassess_patients(rt, list(applied.patients_to_reassess))


@task(name="deliver-alerts", cache_policy=NO_CACHE)
def deliver_alerts(rt: Runtime) -> None:
    """One outbox pass: escalate overdue alerts, deliver what is due, with backoff on failures."""
    from engine.alerts.outbox import RetryPolicy, run_outbox_once

    cfg = rt.settings.alerts
    policy = RetryPolicy(base_s=cfg.backoff_base_s, max_s=cfg.backoff_max_s, max_attempts=cfg.max_attempts)
    report = run_outbox_once(rt.store, rt.sinks, now=sql.now_utc(), policy=policy,
                             escalate_after_h=cfg.escalate_after_h,
                             hold_unconfirmed_critical=cfg.critical_waits_for_confirmation)
    log.debug("alert outbox: %s", report)
