"""Where phase 2 of the write-back (build and upload, ``engine.writeback.step``) runs: in the
caller, or on one background thread while the next cycle runs (``flows.writeback``). No Prefect
import here: the runtime holds a runner, and ``flows.runtime`` is imported before Prefect is
configured."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from engine.archive import Archive
from engine.errors import GlioWatchError
from engine.writeback.step import WriteBackExecution, WriteBackPlan, execute_write_back

log = logging.getLogger("gliowatch.writeback")


@dataclass(frozen=True, slots=True)
class Executed:
    """One plan's phase 2 on the background thread: its execution, or the exception it raised."""

    plan: WriteBackPlan
    execution: WriteBackExecution | None = None
    error: BaseException | None = None


class WriteBackRunner:
    """Where phase 2 of the write-back runs: in the caller (default) or, after
    :meth:`start_background`, on one background thread, one batch at a time."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._archive: Archive | None = None
        self._batch: Future[list[Executed]] | None = None
        self._series: frozenset[str] = frozenset()

    @property
    def background(self) -> bool:
        return self._executor is not None

    @property
    def in_flight(self) -> bool:
        return self._batch is not None

    @property
    def in_flight_series(self) -> frozenset[str]:
        """The series the batch in flight may have stored into the archive, not yet recorded."""
        return self._series

    def start_background(self, archive: Archive) -> None:
        """Execute later batches on a background thread that uploads through ``archive`` (its own
        connection: not the one the ingest uses)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gliowatch-writeback")
            self._archive = archive

    def submit(self, plans: list[WriteBackPlan]) -> None:
        assert self._executor is not None and self._archive is not None and self._batch is None
        self._series = frozenset().union(*(plan.series_uids for plan in plans))
        self._batch = self._executor.submit(execute_batch, plans, self._archive)

    def take(self, *, block: bool) -> list[Executed] | None:
        """The batch in flight once executed (waiting for it when ``block``), [] when there is none,
        None when it is still running and ``block`` is False."""
        if self._batch is None:
            return []
        if not block and not self._batch.done():
            return None
        batch, self._batch = self._batch, None
        try:
            return batch.result()
        finally:
            self._series = frozenset()  # the caller records them now

    def close(self) -> None:
        """Stop the background thread (after the batch in flight, which is then lost unless
        :meth:`take` was called: its studies stay due and are written again by the next run)."""
        executor, self._executor, self._batch = self._executor, None, None
        if executor is not None:
            executor.shutdown(wait=True)


def execute_batch(plans: list[WriteBackPlan], archive: Archive,
                  execute: Callable[[WriteBackPlan, Archive], WriteBackExecution] = execute_write_back) -> list[Executed]:
    """Phase 2 of each plan in order; after a retryable error (archive down) the rest is left for
    the next batch."""
    done = []
    for plan in plans:
        try:
            done.append(Executed(plan, execution=execute(plan, archive)))
        except GlioWatchError as exc:
            done.append(Executed(plan, error=exc))
            if exc.retryable:
                break
        except Exception as exc:  # noqa: BLE001 - one study's failure must not stop the stream
            log.debug("write-back of %s", plan.study_uid, exc_info=exc)
            done.append(Executed(plan, error=exc))
    return done


