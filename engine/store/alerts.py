"""Every SQL statement on the alert tables (alerts, alert_outbox, audit).

Writers take a connection and never commit: the caller's transaction decides. In particular
:func:`enqueue_alerts` runs inside the transaction that writes the assessment, so an assessment and
its alerts commit together or not at all (exactly once, with the idempotency key for re-runs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import duckdb

from engine.alerts.alert import Alert, DeliveryKind, DeliveryStatus, Severity
from engine.store.db import Store
from engine.store.reader import BASIS_SELECT, has_reader_values

Con = duckdb.DuckDBPyConnection


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def enqueue_alerts(
    con: Con, alerts: Iterable[Alert], sinks: Sequence[str], *, now: datetime | None = None
) -> list[int]:
    """Insert new alerts and one PENDING outbox row per sink; returns the ids of the new alerts.

    An alert whose idempotency key is already stored is skipped (``ON CONFLICT DO NOTHING``), and
    so are its outbox rows: the same event is delivered once, ever.
    """
    at = now or now_utc()
    created: list[int] = []
    for alert in alerts:
        rows = con.execute(
            """INSERT INTO alerts (idempotency_key, alert_type, severity, patient_key, study_uid,
                                   study_date, reason, link, criteria, created_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING alert_id""",
            [alert.idempotency_key, str(alert.alert_type), str(alert.severity), alert.patient_key,
             alert.study_uid, alert.study_date, alert.reason, alert.link, alert.criteria, at],
        ).fetchall()
        if not rows:
            continue
        alert_id = int(rows[0][0])
        created.append(alert_id)
        _add_deliveries(con, alert_id, sinks, kind=DeliveryKind.NOTICE, now=at)
    return created


def _add_deliveries(con: Con, alert_id: int, sinks: Sequence[str], *, kind: DeliveryKind, now: datetime) -> None:
    for sink in dict.fromkeys(sinks):
        con.execute(
            """INSERT INTO alert_outbox (alert_id, sink, kind, status, next_attempt_at, created_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (alert_id, sink, kind) DO NOTHING""",
            [alert_id, sink, str(kind), str(DeliveryStatus.PENDING), now, now],
        )


def due_deliveries(store: Store, now: datetime, *, limit: int = 100,
                   hold_unconfirmed_critical: bool = False) -> list[dict[str, Any]]:
    """PENDING outbox rows whose next attempt is due, oldest first, joined with their alert.

    ``hold_unconfirmed_critical``: a CRITICAL clinical alert waits (stays PENDING) until a reader
    confirmed the segmentation of its scan (``reader_values``, issue 32); QA alerts never wait.
    Each row carries ``values_basis``: 'proposed', 'confirmed' or 'rejected' (the reader's latest
    verdict on the scan's segmentation, now), which the sinks put in their messages.
    """
    hold = ""
    basis = (f"LEFT JOIN ({BASIS_SELECT}) rv USING (study_uid)" if has_reader_values(store)
             else "LEFT JOIN (SELECT NULL::VARCHAR AS study_uid, NULL::VARCHAR AS basis) rv USING (study_uid)")
    if hold_unconfirmed_critical:
        hold = ("AND NOT (a.severity = 'CRITICAL' AND a.alert_type NOT LIKE 'QA_%'"
                " AND coalesce(rv.basis, 'proposed') <> 'confirmed')")
    return store.query_dicts(
        f"""SELECT o.outbox_id, o.sink, o.kind, o.attempts, o.next_attempt_at,
                  a.alert_id, a.idempotency_key, a.alert_type, a.severity, a.patient_key, a.study_uid,
                  a.study_date, a.reason, a.link, a.created_at, coalesce(rv.basis, 'proposed') AS values_basis
           FROM alert_outbox o JOIN alerts a USING (alert_id) {basis}
           WHERE o.status = ? AND o.next_attempt_at <= ? {hold}
           ORDER BY o.next_attempt_at, o.outbox_id
           LIMIT ?""",  # noqa: S608 - a fixed clause, no values
        [str(DeliveryStatus.PENDING), now, int(limit)],
    )


def mark_delivered(con: Con, outbox_id: int, *, now: datetime) -> None:
    con.execute(
        """UPDATE alert_outbox SET status = ?, attempts = attempts + 1, delivered_at = ?, last_error = NULL
           WHERE outbox_id = ?""",
        [str(DeliveryStatus.DELIVERED), now, int(outbox_id)],
    )


def mark_failed(con: Con, outbox_id: int, *, error: str, next_attempt_at: datetime | None) -> None:
    """Record a failed attempt: retry at ``next_attempt_at``, or give up (FAILED) when it is None."""
    if next_attempt_at is None:
        con.execute(
            "UPDATE alert_outbox SET status = ?, attempts = attempts + 1, last_error = ? WHERE outbox_id = ?",
            [str(DeliveryStatus.FAILED), error, int(outbox_id)],
        )
    else:
        con.execute(
            """UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
               WHERE outbox_id = ?""",
            [error, next_attempt_at, int(outbox_id)],
        )


def acknowledge(con: Con, alert_id: int, *, user: str, note: str = "", now: datetime | None = None) -> bool:
    """Acknowledge an alert (stops its escalation) and audit it; False when already acknowledged."""
    at = now or now_utc()
    rows = con.execute(
        """UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?, acknowledged_note = ?
           WHERE alert_id = ? AND acknowledged_at IS NULL
           RETURNING patient_key""",
        [at, user, note or None, int(alert_id)],
    ).fetchall()
    if not rows:
        return False
    detail = f"alert {alert_id}" + (f": {note}" if note else "")
    record_audit(con, user=user, action="acknowledge_alert", patient_key=rows[0][0], detail=detail, now=at)
    return True


def record_audit(
    con: Con, *, user: str, action: str, patient_key: str | None = None, detail: str = "",
    now: datetime | None = None,
) -> int:
    """Append one audit row (who, when, what, for which pseudonymous patient); returns its id."""
    row = con.execute(
        """INSERT INTO audit ("at", "user", action, patient_key, detail) VALUES (?, ?, ?, ?, ?)
           RETURNING audit_id""",
        [now or now_utc(), user, action, patient_key, detail or None],
    ).fetchone()
    return int(row[0])


def unacknowledged_older_than(
    store: Store, cutoff: datetime, *, severities: Iterable[Severity]
) -> list[dict[str, Any]]:
    """Alerts raised at or before ``cutoff``, neither acknowledged nor escalated yet."""
    wanted = [str(s) for s in severities]
    if not wanted:
        return []
    marks = ", ".join("?" for _ in wanted)
    return store.query_dicts(
        f"""SELECT * FROM alerts
            WHERE acknowledged_at IS NULL AND escalated_at IS NULL AND created_at <= ?
              AND severity IN ({marks})
            ORDER BY created_at, alert_id""",
        [cutoff, *wanted],
    )


def mark_escalated(con: Con, alert_id: int, *, sinks: Sequence[str], now: datetime) -> bool:
    """Set ``escalated_at`` and queue one ESCALATION delivery per sink; False if already done."""
    rows = con.execute(
        """UPDATE alerts SET escalated_at = ?
           WHERE alert_id = ? AND escalated_at IS NULL AND acknowledged_at IS NULL
           RETURNING alert_id""",
        [now, int(alert_id)],
    ).fetchall()
    if not rows:
        return False
    _add_deliveries(con, int(alert_id), sinks, kind=DeliveryKind.ESCALATION, now=now)
    return True


def list_alerts(
    store: Store, *, patient_key: str | None = None, unacknowledged_only: bool = False, limit: int = 500
) -> list[dict[str, Any]]:
    """Alerts, newest first, for the dashboard and ``gliowatch alerts list``."""
    where, params = ["TRUE"], []
    if patient_key:
        where.append("patient_key = ?")
        params.append(patient_key)
    if unacknowledged_only:
        where.append("acknowledged_at IS NULL")
    return store.query_dicts(
        f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY created_at DESC, alert_id DESC LIMIT ?",
        [*params, int(limit)],
    )


def list_audit(store: Store, *, patient_key: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Audit rows, newest first (keys: audit_id, at, user, action, patient_key, detail)."""
    where, params = ("WHERE patient_key = ?", [patient_key]) if patient_key else ("", [])
    return store.query_dicts(
        f'SELECT audit_id, "at", "user", action, patient_key, detail FROM audit {where} '
        f'ORDER BY "at" DESC, audit_id DESC LIMIT ?',
        [*params, int(limit)],
    )


def outbox_counts(store: Store) -> dict[tuple[str, str], int]:
    """(sink, status) -> number of outbox rows."""
    rows = store.query("SELECT sink, status, count(*) FROM alert_outbox GROUP BY ALL")
    return {(str(sink), str(status)): int(n) for sink, status, n in rows}


def count_alerts(store: Store) -> int:
    return int(store.query("SELECT count(*) FROM alerts")[0][0])


def count_pending_deliveries(store: Store) -> int:
    """Outbox rows still to deliver (PENDING)."""
    return int(store.query("SELECT count(*) FROM alert_outbox WHERE status = ?",
                           [str(DeliveryStatus.PENDING)])[0][0])
