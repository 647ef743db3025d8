"""The demo as a live stream: studies sent to Orthanc over time, processed as they become stable,
with a console line per processed study (the dashboard's Stream health page shows the same from
each cycle's snapshot).

``PacedUploader`` (a thread) sends the cohort study by study as it is written, keeping at most
``ahead`` studies sent but not yet processed, as scanners would; the watch loop
(:func:`stream_until_done`) runs one watch cycle after another (ingest what became stable,
segment, register, reassess, publish the snapshot) and reports each newly processed study.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.errors import GlioWatchError
from engine.store import Store
from flows.runtime import Runtime

#: studies sent to Orthanc but not yet processed, at most (the demo's "scanner" runs ahead of
#: the pipeline by this much). Twice a typical cycle's batch: while a cycle processes the studies
#: it found stable, the next ones are sent and become stable (StableAge), so the next cycle finds
#: work waiting instead of idling through the upload and the StableAge; and small enough that the
#: dashboard and the console still move a few studies at a time.
DEMO_AHEAD = 6


class PacedUploader(threading.Thread):
    """Sends ``studies`` one by one through ``send`` while fewer than ``ahead`` sent studies wait
    for the pipeline; :meth:`processed` tells it how many are through. ``studies`` may be a
    list or an iterator that blocks until the next study exists (the demo's cohort writer)."""

    def __init__(self, studies: Iterable[list[Path]], send: Callable[[Path], Any], *, ahead: int = DEMO_AHEAD) -> None:
        super().__init__(name="demo-uploader", daemon=True)
        self.studies, self.send, self.ahead = studies, send, ahead
        self.sent = 0
        self.error: BaseException | None = None
        self._done = 0
        self._stopping = False
        self._changed = threading.Condition()

    def processed(self, count: int) -> None:
        with self._changed:
            self._done = count
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    def run(self) -> None:
        try:
            for files in self.studies:
                with self._changed:
                    self._changed.wait_for(lambda: self._stopping or self.sent - self._done < self.ahead)
                    if self._stopping:
                        return
                for path in files:
                    self.send(path)
                with self._changed:
                    self.sent += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the watch loop, which stops
            self.error = exc


def processed_studies(store: Store) -> list[dict[str, Any]]:
    """Assessed or quarantined studies (study_uid, patient_key, status), by date."""
    from engine.store.pipeline import pending_studies

    return pending_studies(store, ("ASSESSED", "QUARANTINED"))


def study_line(store: Store, row: dict[str, Any], index: int, total: int) -> str:
    """One console line for a processed study: pseudonymous key, scan date, status, the call."""
    from engine.store.read_model import read_timeline

    if row["status"] != "ASSESSED":
        return f"      [{index}/{total}] patient {row['patient_key']}: {row['status']} (see `gliowatch status`)"
    timeline = read_timeline(store, row["patient_key"])
    match = timeline[timeline["study_uid"] == row["study_uid"]] if "study_uid" in timeline else timeline.iloc[:0]
    if match.empty:
        return f"      [{index}/{total}] patient {row['patient_key']}: ASSESSED"
    r = match.iloc[-1]
    return (f"      [{index}/{total}] patient {row['patient_key']}, MRI {r['scan_date']}: "
            f"{r['response'] or 'no response call'} (timepoint {timeline.index.get_loc(match.index[-1]) + 1})")


def stream_until_done(rt: Runtime, uploader: PacedUploader, n_studies: int, *, timeout_s: float,
                      print_line: Callable[[str], None] = print) -> int:
    """Watch cycles until ``n_studies`` are processed; one line per processed study and one per
    cycle. Returns the number of cycles."""
    from engine.store.board_requests import now_utc
    from engine.store.writer_presence import announce_writer, withdraw_writer

    deadline = time.monotonic() + timeout_s
    # the dashboard's queue says a writer is applying its requests (watch_cycle applies them)
    presence = announce_writer(rt.settings.state_dir, poll_interval_s=rt.settings.watcher.poll_interval_s,
                               now=now_utc())
    try:
        return _cycles(rt, uploader, n_studies, deadline, print_line, presence)
    finally:
        withdraw_writer(rt.settings.state_dir, presence)


def _cycles(rt: Runtime, uploader: PacedUploader, n_studies: int, deadline: float,
            print_line: Callable[[str], None], presence: Any) -> int:
    from engine.store.board_requests import now_utc
    from engine.store.writer_presence import record_cycle
    from flows.watch import watch_cycle

    seen: set[str] = set()
    cycles = 0
    while time.monotonic() < deadline:
        if uploader.error is not None:
            raise GlioWatchError("The demo could not send the cohort to Orthanc",
                                 detail=f"{type(uploader.error).__name__}: {uploader.error}")
        t0 = time.monotonic()
        report = watch_cycle(rt, reconcile=True)
        cycles += 1
        presence = record_cycle(rt.settings.state_dir, presence, now=now_utc())
        rows = processed_studies(rt.store)
        for row in rows:
            if row["study_uid"] not in seen:
                seen.add(row["study_uid"])
                print_line(study_line(rt.store, row, len(seen), n_studies))
        uploader.processed(len(rows))
        if report.ingested or report.quarantined:
            print_line(f"      cycle {cycles}: {len(report.ingested) + len(report.quarantined)} new, "
                       f"{len(rows)}/{n_studies} processed, {uploader.sent}/{n_studies} sent to Orthanc "
                       f"({time.monotonic() - t0:.0f} s)")
        if len(rows) >= n_studies:
            return cycles
        time.sleep(rt.settings.watcher.poll_interval_s)
    raise GlioWatchError(f"The demo stream did not finish {n_studies} studies in time ({cycles} cycles)")
