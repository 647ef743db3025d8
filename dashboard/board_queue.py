"""How the dashboard hands writes to the one writer.

Every action and page view becomes a :class:`~engine.store.board.BoardRequest` file in
``state_dir/requests/``. The writer (the watch flow) applies the queue each cycle and publishes a
new snapshot. Choice documented in docs: when no writer holds the main store (DuckDB's lock is
free, e.g. the pipeline is not running), an *action* (not a page view) applies the queue at once
itself — open the main store, apply, publish the snapshot, close — so the tumour board sees its
acknowledgement without waiting for a writer that may not come. The attempt fails fast when the
writer holds the lock, and the request simply waits in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreError
from engine.settings import Settings
from engine.store import open_store, publish_snapshot
from engine.store.board import BoardRequest, apply_board_requests, pending_requests, write_request


def requests_dir(settings: Settings) -> Path:
    return settings.state_dir / "requests"


@dataclass(frozen=True, slots=True)
class Submitted:
    path: Path
    applied_now: bool
    message: str


def submit(settings: Settings, request: BoardRequest, *, apply_when_idle: bool = True) -> Submitted:
    """Queue ``request``; for actions, apply the queue at once when no writer holds the store."""
    path = write_request(requests_dir(settings), request)
    if not apply_when_idle:
        return Submitted(path, False, "Queued; the pipeline applies it within one cycle.")
    applied, message = apply_if_idle(settings)
    if applied and request.request_id in applied:
        return Submitted(path, True, "Saved.")
    return Submitted(path, False, message)


def apply_if_idle(settings: Settings) -> tuple[tuple[str, ...], str]:
    """Apply the queue when the main store is free; returns (applied request ids, message)."""
    if not settings.db_path.exists():
        return (), "Queued; no store exists yet, the pipeline applies it when it runs."
    try:
        store = open_store(settings.db_path)
    except StoreError:
        return (), "Queued; the running pipeline applies it within one cycle."
    try:
        result = apply_board_requests(store, requests_dir(settings))
        publish_snapshot(store, settings.snapshot_path)
    finally:
        store.close()
    if result.failed:
        return result.applied, "Not applied: " + "; ".join(reason for _, reason in result.failed)
    return result.applied, "Saved."


def queued_count(settings: Settings) -> int:
    return len(pending_requests(requests_dir(settings)))
