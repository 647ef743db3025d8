"""How the dashboard hands writes to the one writer, without ever opening the main store.

Every action and page view becomes a :class:`~engine.store.board_requests.BoardRequest` file in
``state_dir/requests/`` (written atomically). The writer (``gliowatch serve`` / ``watch``) applies
the queue each cycle, exactly once per request id, and publishes a new snapshot when something
changed; the page shows the result on its next run. Until then the Actions page lists the
request as waiting. Whether a writer will come is read from the file the writer's loop keeps up
to date (:mod:`engine.store.writer_presence`), so the page says "applied within one cycle" or
"waits until the pipeline starts" — it never opens, waits for or locks the main store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.settings import Settings
from engine.store import board_requests as queue
from engine.store.board_requests import BoardRequest, FailedRequest, RequestKind
from engine.store.writer_presence import WriterState, read_presence, writer_state

START_HINT = "`gliowatch serve` (or `gliowatch watch`)"


def requests_dir(settings: Settings) -> Path:
    return queue.requests_dir(settings.state_dir)


@dataclass(frozen=True, slots=True)
class WriterStatus:
    state: WriterState
    message: str  # one sentence for the page


@dataclass(frozen=True, slots=True)
class Submitted:
    path: Path
    request_id: str
    writer: WriterState
    message: str


def writer_status(settings: Settings) -> WriterStatus:
    """Whether a pipeline is running to apply queued requests, in words for the page."""
    presence = read_presence(settings.state_dir)
    if presence is None:
        return WriterStatus(WriterState.NEVER, "No pipeline has run on this state folder yet: requests wait "
                                               f"in the queue, nothing is lost, until {START_HINT} starts.")
    last = presence.last_cycle_at or presence.started_at
    if writer_state(presence, now=queue.now_utc()) == WriterState.RUNNING:
        return WriterStatus(WriterState.RUNNING, "The running pipeline applies queued requests within one "
                                                 f"cycle (last cycle {last:%Y-%m-%d %H:%M:%S} UTC).")
    return WriterStatus(WriterState.STOPPED, f"No pipeline is running (the last one was seen {last:%Y-%m-%d %H:%M} "
                                             f"UTC): requests wait in the queue, nothing is lost, until {START_HINT} "
                                             "starts.")


def submit(settings: Settings, request: BoardRequest) -> Submitted:
    """Queue ``request`` for the writer; says when it will be applied."""
    path = queue.write_request(requests_dir(settings), request)
    status = writer_status(settings)
    return Submitted(path, request.request_id, status.state, f"Queued. {status.message}")


def queued_count(settings: Settings) -> int:
    return len(queue.pending_requests(requests_dir(settings)))


def waiting_actions(settings: Settings, patient_key: str) -> list[BoardRequest]:
    """This patient's actions (not page views) still waiting for the writer, oldest first."""
    return [r for r in queue.queued_requests(requests_dir(settings))
            if r.patient_key == patient_key and r.kind != RequestKind.PAGE_VIEW]


def refused(settings: Settings, request_ids: set[str]) -> list[FailedRequest]:
    """Which of ``request_ids`` the writer refused, with its reason."""
    return [f for f in queue.failed_requests(requests_dir(settings)) if f.request.request_id in request_ids]
