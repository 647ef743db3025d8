"""The long-running loop shared by `gliowatch watch` and `gliowatch serve`.

Each cycle: queued backfill requests, then one Prefect watch cycle (pending steps, change feed,
per-study processing, board requests queued by the dashboard, alert delivery, reconciliation every
N cycles, snapshot). While it runs, ``state_dir/writer.json`` says so (rewritten after each cycle,
removed on exit), so the dashboard can tell its users whether a queued request will be applied.
Retryable failures (archive down) are logged and retried next cycle; anything else stops the loop
with its message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from engine.errors import GlioWatchError
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.usecases.follow_archive import CycleReport
    from flows.runtime import Runtime

log = logging.getLogger("gliowatch.service")


@dataclass(frozen=True, slots=True)
class LoopOptions:
    once: bool = False
    max_cycles: int = 0
    #: checked after each cycle: the loop ends when it returns True (the demo: its dashboard exited)
    stop_when: Callable[[], bool] | None = None


def run_one_cycle(rt: Runtime, *, reconcile: bool) -> CycleReport:
    """Queued backfill requests, then one watch cycle (the unit both service modes repeat)."""
    from flows.cmd_backfill import backfill, take_requests
    from flows.watch import watch_cycle

    for req in take_requests(rt.settings):
        since = date.fromisoformat(req["since"]) if req.get("since") else None
        report = backfill(rt, since=since, patient=req.get("patient"))
        log.info("queued backfill done: %s", report.summary())
    return watch_cycle(rt, reconcile=reconcile)


def run_loop(settings: Settings, options: LoopOptions) -> int:
    """Run cycles until stopped (or once)."""
    from flows.runtime import build_runtime

    from engine.store.board_requests import now_utc
    from engine.store.writer_presence import announce_writer, record_cycle, withdraw_writer

    rt = build_runtime(settings)  # holds the store for writing from here on
    presence = announce_writer(settings.state_dir, poll_interval_s=settings.watcher.poll_interval_s,
                               now=now_utc())
    cycles = 0
    try:
        while True:
            reconcile = options.once or cycles % max(settings.watcher.reconcile_every, 1) == 0
            try:
                report = run_one_cycle(rt, reconcile=reconcile)
                print(report.summary(), flush=True)
            except GlioWatchError as exc:
                if not exc.retryable or options.once:
                    raise
                log.warning("cycle failed, retrying in %.0f s: %s", settings.watcher.poll_interval_s,
                            exc.reason)
            cycles += 1
            presence = record_cycle(settings.state_dir, presence, now=now_utc())
            if options.once or (options.max_cycles and cycles >= options.max_cycles):
                return 0
            if options.stop_when is not None and options.stop_when():
                return 0
            time.sleep(settings.watcher.poll_interval_s)
    finally:
        withdraw_writer(settings.state_dir, presence)
        rt.close()
