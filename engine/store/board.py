"""Tumour-board actions: a small write queue from the dashboard to the one writer.

The dashboard never writes the main store. It appends one JSON file per request to
``state_dir/requests/`` (written under a temporary name, then ``os.replace``), and the writer
process calls :func:`apply_board_requests` each cycle: every request runs in its own transaction
together with its audit row and a ``board_requests`` row keyed by ``request_id``, so a request
applied once is never applied twice (a crash between the commit and the file's removal only
leaves a file that the next call discards). The next published snapshot shows the result; a
page view alone does not make the snapshot stale (no page shows it).

Requests: a page view (audit only), acknowledging an alert, recording a decision with a note,
and correcting a clinical event (e.g. the RT end date; the patient needs re-assessment after it,
which :class:`AppliedRequests` reports).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb

from engine.errors import GlioWatchError, StoreError
from engine.store.alerts import acknowledge, record_audit
from engine.store.db import Store

Con = duckdb.DuckDBPyConnection

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS board_requests (
        request_id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,                -- RequestKind
        user_name VARCHAR NOT NULL,
        patient_key VARCHAR,
        requested_at TIMESTAMP NOT NULL,
        applied_at TIMESTAMP NOT NULL,
        status VARCHAR NOT NULL,              -- APPLIED, FAILED
        reason VARCHAR
    )""",
    "CREATE SEQUENCE IF NOT EXISTS board_decision_seq START 1",
    """CREATE TABLE IF NOT EXISTS board_decisions (
        decision_id BIGINT PRIMARY KEY DEFAULT nextval('board_decision_seq'),
        patient_key VARCHAR NOT NULL,
        study_uid VARCHAR,
        decision VARCHAR NOT NULL,            -- Decision
        note VARCHAR NOT NULL,
        decided_by VARCHAR NOT NULL,
        decided_at TIMESTAMP NOT NULL,
        request_id VARCHAR NOT NULL
    )""",
)

#: clinical events that occur once per patient, so a correction replaces the stored date.
SINGLE_EVENTS: frozenset[str] = frozenset({"RT_START", "RT_END", "CHEMO_START", "CHEMO_END",
                                           "ANTIANGIOGENIC_START"})


class RequestKind(StrEnum):
    PAGE_VIEW = "PAGE_VIEW"
    ACKNOWLEDGE_ALERT = "ACKNOWLEDGE_ALERT"
    RECORD_DECISION = "RECORD_DECISION"
    CORRECT_EVENT = "CORRECT_EVENT"


class Decision(StrEnum):
    """What a tumour board decided for a patient (stored as the value)."""

    CONTINUE_SURVEILLANCE = "CONTINUE_SURVEILLANCE"
    SHORT_INTERVAL_SCAN = "SHORT_INTERVAL_SCAN"
    ADVANCED_IMAGING = "ADVANCED_IMAGING"
    CHANGE_THERAPY = "CHANGE_THERAPY"
    SURGERY_OR_BIOPSY = "SURGERY_OR_BIOPSY"
    OTHER = "OTHER"


_REQUIRED: dict[RequestKind, tuple[str, ...]] = {
    RequestKind.PAGE_VIEW: ("page",),
    RequestKind.ACKNOWLEDGE_ALERT: ("alert_id", "note"),
    RequestKind.RECORD_DECISION: ("decision", "note"),
    RequestKind.CORRECT_EVENT: ("event", "event_date", "note"),
}


def _now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class BoardRequest:
    """One request from the dashboard; valid once constructed."""

    kind: RequestKind
    user: str
    patient_key: str | None
    payload: Mapping[str, str]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    requested_at: datetime = field(default_factory=_now_utc)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RequestKind(self.kind))
        if not self.user:
            msg = "Argument 'user' must name the logged-in user"
            raise ValueError(msg)
        missing = [k for k in _REQUIRED[self.kind] if k not in self.payload]
        if missing:
            msg = f"Argument 'payload' of a {self.kind} request must have {', '.join(missing)}"
            raise ValueError(msg)
        if self.kind != RequestKind.PAGE_VIEW and not self.patient_key:
            msg = f"Argument 'patient_key' is required for a {self.kind} request"
            raise ValueError(msg)
        if self.kind == RequestKind.RECORD_DECISION:
            Decision(self.payload["decision"])
        if self.kind == RequestKind.CORRECT_EVENT:
            date.fromisoformat(self.payload["event_date"])

    def to_json(self) -> str:
        return json.dumps({"request_id": self.request_id, "kind": self.kind.value, "user": self.user,
                           "patient_key": self.patient_key, "payload": dict(self.payload),
                           "requested_at": self.requested_at.isoformat()}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BoardRequest:
        data = json.loads(text)
        return cls(kind=RequestKind(data["kind"]), user=str(data["user"]),
                   patient_key=data.get("patient_key"),
                   payload={str(k): str(v) for k, v in dict(data["payload"]).items()},
                   request_id=str(data["request_id"]),
                   requested_at=datetime.fromisoformat(data["requested_at"]))


@dataclass(frozen=True, slots=True)
class AppliedRequests:
    applied: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()  # (file name, reason)
    skipped: tuple[str, ...] = ()  # already applied earlier (file left behind by a crash)
    patients_to_reassess: tuple[str, ...] = ()


def write_request(requests_dir: Path | str, request: BoardRequest) -> Path:
    """Append one request to the queue atomically; returns its file."""
    folder = Path(requests_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{request.requested_at:%Y%m%dT%H%M%S%f}-{request.request_id}.json"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(request.to_json(), encoding="utf-8")
    final = folder / name
    os.replace(tmp, final)
    return final


def pending_requests(requests_dir: Path | str) -> list[Path]:
    folder = Path(requests_dir)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def apply_board_requests(store: Store, requests_dir: Path | str) -> AppliedRequests:
    """Apply every queued request, oldest first, each in its own transaction with its audit row."""
    if store.read_only:
        msg = "Argument 'store' must be the writer's store, not a read-only snapshot"
        raise ValueError(msg)
    applied: list[str] = []
    failed: list[tuple[str, str]] = []
    skipped: list[str] = []
    reassess: set[str] = set()
    for path in pending_requests(requests_dir):
        try:
            request = BoardRequest.from_json(path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError) as exc:
            failed.append((path.name, f"unreadable request: {exc}"))
            _park(path, "failed")
            continue
        if store.query("SELECT 1 FROM board_requests WHERE request_id = ?", [request.request_id]):
            skipped.append(request.request_id)
            path.unlink(missing_ok=True)
            continue
        try:
            # a page view is audit only: no reader is shown it, so it alone does not republish
            with store.transaction(visible=request.kind != RequestKind.PAGE_VIEW) as con:
                _apply_one(con, request)
                _mark(con, request, status="APPLIED", reason=None)
        except (GlioWatchError, ValueError, duckdb.Error) as exc:
            reason = getattr(exc, "message", None) or str(exc)
            with store.transaction() as con:
                _mark(con, request, status="FAILED", reason=reason)
            failed.append((path.name, reason))
            _park(path, "failed")
            continue
        applied.append(request.request_id)
        if request.kind == RequestKind.CORRECT_EVENT and request.patient_key:
            reassess.add(request.patient_key)
        path.unlink(missing_ok=True)
    return AppliedRequests(applied=tuple(applied), failed=tuple(failed), skipped=tuple(skipped),
                           patients_to_reassess=tuple(sorted(reassess)))


def _park(path: Path, sub: str) -> None:
    target = path.parent / sub
    target.mkdir(exist_ok=True)
    os.replace(path, target / path.name)


def _mark(con: Con, request: BoardRequest, *, status: str, reason: str | None) -> None:
    con.execute(
        "INSERT INTO board_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [request.request_id, request.kind.value, request.user, request.patient_key,
         request.requested_at, _now_utc(), status, reason],
    )


def _apply_one(con: Con, request: BoardRequest) -> None:
    p, at, key = request.payload, request.requested_at, request.patient_key
    if request.kind == RequestKind.PAGE_VIEW:
        detail = f"page={p['page']}" + (f" study={p['study_uid']}" if p.get("study_uid") else "")
        record_audit(con, user=request.user, action="view", patient_key=key, detail=detail, now=at)
    elif request.kind == RequestKind.ACKNOWLEDGE_ALERT:
        _acknowledge(con, request)
    elif request.kind == RequestKind.RECORD_DECISION:
        con.execute(
            """INSERT INTO board_decisions (patient_key, study_uid, decision, note, decided_by,
                   decided_at, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)""",
            [key, p.get("study_uid") or None, p["decision"], p["note"], request.user, at,
             request.request_id],
        )
        record_audit(con, user=request.user, action="record_decision", patient_key=key,
                     detail=f"{p['decision']}: {p['note']}", now=at)
    else:
        detail = correct_event(con, patient_key=str(key), event=p["event"],
                               event_date=date.fromisoformat(p["event_date"]),
                               old_event_date=p.get("old_event_date") or None,
                               value=p.get("value") or None, user=request.user)
        record_audit(con, user=request.user, action="correct_event", patient_key=key,
                     detail=f"{detail}; note: {p['note']}", now=at)


def _acknowledge(con: Con, request: BoardRequest) -> None:
    """The alerts module's ``acknowledge`` writes the acknowledgement and its audit row."""
    try:
        alert_id = int(request.payload["alert_id"])
    except ValueError as exc:
        msg = f"Alert id {request.payload['alert_id']!r} is not a number"
        raise StoreError(msg) from exc
    rows = con.execute("SELECT patient_key FROM alerts WHERE alert_id = ?", [alert_id]).fetchall()
    if not rows or rows[0][0] != request.patient_key:
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
    where = "patient_key = ? AND event = ?"
    params: list[Any] = [patient_key, event]
    if old_event_date is not None:
        where += " AND event_date = ?"
        params.append(date.fromisoformat(old_event_date))
    old = con.execute(f"SELECT event_date, value FROM clinical_events WHERE {where} ORDER BY event_date",
                      params).fetchall()
    con.execute(f"DELETE FROM clinical_events WHERE {where}", params)
    kept_value = value if value is not None else (old[0][1] if old else None)
    con.execute(
        """INSERT INTO clinical_events (patient_key, event_date, event, value, source, entered_by,
               entered_at) VALUES (?, ?, ?, ?, 'board', ?, ?)""",
        [patient_key, event_date, event, kept_value, user, _now_utc()],
    )
    before = ", ".join(str(r[0]) for r in old) or "none"
    return f"{event} {before} -> {event_date.isoformat()}"
