"""Tumour-board tables and their statements: ``board_requests`` (one row per request applied or
refused, keyed by ``request_id``, so a request is never applied twice) and ``board_decisions``.

Storing only: what a request means and in which order requests are applied is decided by
:mod:`engine.usecases.apply_board_request`, which the writer process calls each cycle.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb

from engine.store.board_requests import BoardRequest
from engine.store.board_requests import now_utc as _now_utc
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


def is_recorded(store: Store, request_id: str) -> bool:
    """Whether the writer has already applied (or refused) the request ``request_id``."""
    return bool(store.query("SELECT 1 FROM board_requests WHERE request_id = ?", [request_id]))


def mark_request(con: Con, request: BoardRequest, *, status: str, reason: str | None) -> None:
    """The request's ``board_requests`` row (APPLIED or FAILED with the reason); a second mark of
    the same request id is ignored."""
    con.execute(
        "INSERT INTO board_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [request.request_id, request.kind.value, request.user, request.patient_key,
         request.requested_at, _now_utc(), status, reason],
    )


def insert_decision(con: Con, *, patient_key: str | None, study_uid: str | None, decision: str, note: str,
                    decided_by: str, decided_at: Any, request_id: str) -> None:
    con.execute(
        """INSERT INTO board_decisions (patient_key, study_uid, decision, note, decided_by,
               decided_at, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        [patient_key, study_uid, decision, note, decided_by, decided_at, request_id],
    )


def alert_patient(con: Con, alert_id: int) -> str | None:
    """The patient key of alert ``alert_id`` (None: no such alert)."""
    rows = con.execute("SELECT patient_key FROM alerts WHERE alert_id = ?", [alert_id]).fetchall()
    return rows[0][0] if rows else None


def replace_event(
    con: Con, *, patient_key: str, event: str, event_date: date, user: str,
    old_event_date: date | None = None, value: str | None = None,
) -> list[date]:
    """Replace the patient's ``event`` rows (those on ``old_event_date`` when given, else all of
    them) by one row on ``event_date``, entered by the board; the value is ``value`` or the first
    replaced row's. Returns the replaced dates, oldest first."""
    where = "patient_key = ? AND event = ?"
    params: list[Any] = [patient_key, event]
    if old_event_date is not None:
        where += " AND event_date = ?"
        params.append(old_event_date)
    old = con.execute(f"SELECT event_date, value FROM clinical_events WHERE {where} ORDER BY event_date",
                      params).fetchall()
    con.execute(f"DELETE FROM clinical_events WHERE {where}", params)
    kept_value = value if value is not None else (old[0][1] if old else None)
    con.execute(
        """INSERT INTO clinical_events (patient_key, event_date, event, value, source, entered_by,
               entered_at) VALUES (?, ?, ?, ?, 'board', ?, ?)""",
        [patient_key, event_date, event, kept_value, user, _now_utc()],
    )
    return [r[0] for r in old]
