"""Use case ``apply_board_request``: the tumour board's requests, applied by the one writer.

The dashboard never opens the main store. It queues :class:`BoardRequest` files in
``state_dir/requests/`` (:mod:`engine.store.board_requests`), and the writer process calls
:func:`apply_board_requests` each cycle: oldest first, every request runs in its own transaction
together with its audit row and a ``board_requests`` row keyed by ``request_id``, so a request
applied once is never applied twice (a crash between the commit and the file's removal only
leaves a file that the next call discards, and so does a copy of the file). A refused request
is recorded as FAILED and its file parked in ``requests/failed/`` with the reason. The next
published snapshot shows the result; a page view alone does not make the snapshot stale (no page
shows it).

Requests: a page view (audit only), acknowledging an alert, recording a decision with a note,
correcting a clinical event (e.g. the RT end date), and the reader's values for a scan
(accept/reject the segmentation, targets, diameters, findings; :mod:`engine.reader_values`). The
patient needs re-assessment after the last two, which :class:`AppliedRequests` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from engine.errors import GlioWatchError, StoreError
from engine.store.alerts import acknowledge, record_audit
from engine.store.board import Con, alert_patient, insert_decision, is_recorded, mark_request, replace_event
from engine.reader_values import ReaderValueKind, in_force
from engine.store import reader as reader_sql
from engine.store.board_requests import (
    READER_KINDS,
    BoardRequest,
    RequestKind,
    discard_stale_temporaries,
    park_failed,
    pending_requests,
    reader_ends,
    reader_value,
)
from engine.store.db import Store

#: clinical events that occur once per patient, so a correction replaces the stored date.
SINGLE_EVENTS: frozenset[str] = frozenset({"RT_START", "RT_END", "CHEMO_START", "CHEMO_END",
                                           "ANTIANGIOGENIC_START"})


@dataclass(frozen=True, slots=True)
class AppliedRequests:
    applied: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()  # (file name, reason)
    skipped: tuple[str, ...] = ()  # already applied earlier (file left behind by a crash)
    patients_to_reassess: tuple[str, ...] = ()


def apply_board_requests(store: Store, requests_dir: Path | str) -> AppliedRequests:
    """Apply every queued request, oldest first, each in its own transaction with its audit row."""
    if store.read_only:
        msg = "Argument 'store' must be the writer's store, not a read-only snapshot"
        raise ValueError(msg)
    applied: list[str] = []
    failed: list[tuple[str, str]] = []
    skipped: list[str] = []
    reassess: set[str] = set()
    discard_stale_temporaries(requests_dir)
    for path in pending_requests(requests_dir):
        try:
            request = BoardRequest.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (ValueError, KeyError, TypeError) as exc:
            reason = f"unreadable request: {exc}"
            failed.append((path.name, reason))
            park_failed(path, reason)
            continue
        if is_recorded(store, request.request_id):  # applied (or refused) before: a second copy
            skipped.append(request.request_id)
            path.unlink(missing_ok=True)
            continue
        try:
            # a page view is audit only: no reader is shown it, so it alone does not republish
            with store.transaction(visible=request.kind != RequestKind.PAGE_VIEW) as con:
                apply_board_request(con, request)
                mark_request(con, request, status="APPLIED", reason=None)
        except (GlioWatchError, ValueError, duckdb.Error) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            with store.transaction() as con:
                mark_request(con, request, status="FAILED", reason=reason)
            failed.append((path.name, reason))
            park_failed(path, reason)
            continue
        applied.append(request.request_id)
        if (request.kind == RequestKind.CORRECT_EVENT or request.kind in READER_KINDS) and request.patient_key:
            reassess.add(request.patient_key)
        path.unlink(missing_ok=True)
    return AppliedRequests(applied=tuple(applied), failed=tuple(failed), skipped=tuple(skipped),
                           patients_to_reassess=tuple(sorted(reassess)))


def apply_board_request(con: Con, request: BoardRequest) -> None:
    """One request and its audit row (caller's transaction); raises when it is refused."""
    p, at, key = request.payload, request.requested_at, request.patient_key
    if request.kind == RequestKind.PAGE_VIEW:
        detail = f"page={p['page']}" + (f" study={p['study_uid']}" if p.get("study_uid") else "")
        record_audit(con, user=request.user, action="view", patient_key=key, detail=detail, now=at)
    elif request.kind == RequestKind.ACKNOWLEDGE_ALERT:
        _acknowledge(con, request)
    elif request.kind in READER_KINDS:
        _record_reader_value(con, request)
    elif request.kind == RequestKind.RECORD_DECISION:
        insert_decision(con, patient_key=key, study_uid=p.get("study_uid") or None, decision=p["decision"],
                        note=p["note"], decided_by=request.user, decided_at=at, request_id=request.request_id)
        record_audit(con, user=request.user, action="record_decision", patient_key=key,
                     detail=f"{p['decision']}: {p['note']}", now=at)
    else:
        detail = correct_event(con, patient_key=str(key), event=p["event"],
                               event_date=date.fromisoformat(p["event_date"]),
                               old_event_date=p.get("old_event_date") or None,
                               value=p.get("value") or None, user=request.user)
        record_audit(con, user=request.user, action="correct_event", patient_key=key,
                     detail=f"{detail}; note: {p['note']}", now=at)


def _record_reader_value(con: Con, request: BoardRequest) -> None:
    """One reader entry with what was in force before it (the reader's earlier value, else the
    automatic one), and its audit row; the caller re-assesses the patient afterwards."""
    key, study_uid = str(request.patient_key), request.payload["study_uid"]
    if not reader_sql.study_of_patient(con, key, study_uid):
        raise StoreError("The scan does not belong to this patient", exam=f"patient {key}",
                         action="Reload the dashboard and choose the scan again.")
    kind, lesion_index, value = reader_value(request)
    force = in_force(reader_sql.read_entries(con, key))  # the reader's latest value per key
    entry = force.get(("" if kind is ReaderValueKind.TARGETS else study_uid, kind, lesion_index))
    before = dict(entry.value) if entry is not None else None
    if before is None and lesion_index is not None:
        before = reader_sql.automatic_lesion(con, study_uid, lesion_index)
        if before is None:
            raise StoreError(f"Lesion {lesion_index} is not in this scan's current measurement",
                             exam=f"patient {key}", action="Reload the dashboard; the lesions may have changed.")
    note = request.payload["note"].strip()
    ends = reader_ends(request)  # a new lesion drawn on the image: where its diameters were clicked
    reader_sql.insert_entry(con, patient_key=key, study_uid=study_uid, kind=kind, lesion_index=lesion_index,
                            value=value, before=before, note=note, user=request.user, at=request.requested_at,
                            request_id=request.request_id, ends=ends)
    lesion = f" lesion {lesion_index}" if lesion_index is not None else ""
    drawn = f"; drawn on the image, d1 {ends['d1_p0']}-{ends['d1_p1']} mm" if ends else ""
    record_audit(con, user=request.user, action=f"reader_{kind.value.lower()}", patient_key=key,
                 detail=f"study={study_uid}{lesion}: {before or 'proposed'} -> {value}{drawn}"
                        + (f"; note: {note}" if note else ""), now=request.requested_at)


def _acknowledge(con: Con, request: BoardRequest) -> None:
    """The alerts module's ``acknowledge`` writes the acknowledgement and its audit row."""
    try:
        alert_id = int(request.payload["alert_id"])
    except ValueError as exc:
        msg = f"Alert id {request.payload['alert_id']!r} is not a number"
        raise StoreError(msg) from exc
    owner = alert_patient(con, alert_id)
    if owner is None or owner != request.patient_key:
        raise StoreError(f"Alert {alert_id} does not exist for this patient",
                         exam=f"patient {request.patient_key}",
                         action="Reload the dashboard; the alert list may have changed.")
    if not acknowledge(con, alert_id, user=request.user, note=request.payload["note"],
                       now=request.requested_at):
        raise StoreError(f"Alert {alert_id} was already acknowledged",
                         exam=f"patient {request.patient_key}")


def correct_event(
    con: Con,
    *,
    patient_key: str,
    event: str,
    event_date: date,
    user: str,
    old_event_date: str | None = None,
    value: str | None = None,
) -> str:
    """Replace a clinical event's date; returns 'EVENT old -> new' for the audit row."""
    if event not in SINGLE_EVENTS and old_event_date is None:
        raise StoreError(f"{event} can occur several times; say which date to correct",
                         exam=f"patient {patient_key}", action="Give the date being corrected.")
    old = replace_event(con, patient_key=patient_key, event=event, event_date=event_date, user=user,
                        old_event_date=date.fromisoformat(old_event_date) if old_event_date is not None else None,
                        value=value)
    before = ", ".join(str(d) for d in old) or "none"
    return f"{event} {before} -> {event_date.isoformat()}"
