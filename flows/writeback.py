"""The write-back step in the flow: every assessed study whose latest assessment is not yet in
the archive gets its SEG and SR stored there (``engine.writeback.step``).

Called after assessment and at the start of every cycle (``flows.process``), so a study left
between assessment and write-back (crash, archive down) is picked up by the next cycle.

A study's write-back has three phases: plan (reads the store), execute (builds the objects and
uploads them; no store) and record (commits). By default all three run in the caller, one Prefect
task per study. A long-running loop (``gliowatch watch``/``serve``, the demo's stream) calls
:meth:`WriteBackRunner.start_background`: then the execution of a cycle's batch runs on one
background thread with its own archive connection while the next cycle ingests, segments and
registers, and the batch is recorded by the store's one writer at the next call (the end of the
next cycle's processing, or the start of a cycle once the batch is done). Only plans and results
cross threads; the store is never used from the background thread. :meth:`WriteBackRunner.drain`
finishes and records everything before the loop ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NONE as NO_CACHE

from engine.errors import GlioWatchError
from engine.pipeline import StageOutcome
from engine.store import writeback as writeback_sql
from engine.writeback.step import (
    WriteBackExecution,
    WriteBackOptions,
    WriteBackOutcome,
    WriteBackPlan,
    plan_write_backs,
    record_failure,
    record_write_back,
)
from flows.writeback_runner import Executed, execute_batch

if TYPE_CHECKING:
    from flows.runtime import Runtime

log = logging.getLogger("gliowatch.writeback")


def _options(rt: Runtime) -> WriteBackOptions:
    settings = rt.settings.writeback
    return WriteBackOptions(segmentation_type="LABELMAP" if settings.labelmap else "BINARY",
                            delete_superseded=settings.delete_superseded, key_image=settings.key_image)


@task(name="write-back-study", cache_policy=NO_CACHE)
def write_back_task(rt: Runtime, plan: WriteBackPlan) -> WriteBackOutcome:
    """Phases 2 and 3 of one study, in the caller."""
    return _record(rt, execute_batch([plan], rt.archive)[0])


def _record(rt: Runtime, executed: Executed) -> WriteBackOutcome:
    """Phase 3 (the store's writer): a retryable error propagates (the study stays due)."""
    plan, error = executed.plan, executed.error
    if error is None:
        assert executed.execution is not None
        return record_write_back(rt.store, rt.archive, executed.execution)
    if isinstance(error, GlioWatchError):
        if error.retryable:
            raise error
        return record_write_back(rt.store, rt.archive, WriteBackExecution(plan, failure=error.reason))
    return record_failure(rt.store, plan.study_uid, assessed_at=plan.assessed_at,
                          reason=f"Write-back failed unexpectedly ({type(error).__name__})")


def _outcome(outcome: WriteBackOutcome) -> StageOutcome:
    (log.info if outcome.ok else log.warning)("write-back %s: %s", "done" if outcome.ok else "FAILED",
                                              outcome.message)
    return StageOutcome(stage="write-back", study_uid=outcome.study_uid, ok=outcome.ok, message=outcome.message)


def _record_batch(rt: Runtime, batch: list[Executed]) -> list[StageOutcome]:
    """Phase 3 of an executed batch, in order; a retryable error is raised after the rest is recorded."""
    outcomes, retry = [], None
    for executed in batch:
        try:
            outcomes.append(_outcome(_record(rt, executed)))
        except GlioWatchError as exc:
            if not exc.retryable:
                raise
            retry = retry or exc
    if retry is not None:
        raise retry
    return outcomes


def write_back_pending(rt: Runtime, *, wait: bool = True) -> list[StageOutcome]:
    """Write back every study due (writer process); nothing when ``[writeback] enabled`` is off.

    In the background mode: record the batch in flight (waiting for it when ``wait``; when it is
    still running and ``wait`` is False, do nothing now), then plan the studies due and hand them
    to the background thread."""
    if not rt.settings.writeback.enabled:
        return []
    runner = rt.writeback
    finished = runner.take(block=wait)
    if finished is None:
        return []
    outcomes = _record_batch(rt, finished)
    due = [(row["study_uid"], row["assessed_at"]) for row in writeback_sql.studies_due(rt.store)]
    if not due:
        return outcomes
    plans = plan_write_backs(rt.store, due, paths=rt.paths, writeback_dir=rt.settings.writeback_dir,
                             options=_options(rt))
    if runner.background:
        runner.submit(plans)
        return outcomes
    for plan in plans:
        outcomes.append(_outcome(write_back_task(rt, plan)))
    return outcomes


def drain_write_back(rt: Runtime) -> list[StageOutcome]:
    """Until nothing is due or in flight: record the batch in flight and write what is due (the
    end of a loop; the last batch runs in the background like the others)."""
    outcomes: list[StageOutcome] = []
    while True:
        outcomes += write_back_pending(rt, wait=True)
        if not rt.writeback.in_flight:
            return outcomes


def finish_write_back(rt: Runtime) -> list[StageOutcome]:
    """:func:`drain_write_back`, then the snapshot published if that changed the store (the end
    of a loop whose last cycle's batch ran in the background)."""
    from engine.store import publish_snapshot

    if not rt.settings.writeback.enabled:
        return []
    outcomes = drain_write_back(rt)
    if outcomes:  # else the store is as the last cycle published it
        publish_snapshot(rt.store, rt.settings.snapshot_path)
    return outcomes
