"""Delivery from the outbox: retries with exponential backoff, and escalation of ignored alerts.

Each due outbox row is sent to its sink and then recorded in its own transaction, so a sink that is
down for an hour loses nothing (its rows stay PENDING and are retried at growing intervals) and a
delivered row is never sent again. The one window left is a crash after the sink accepted a
message and before ``mark_delivered`` committed: the message is sent again after the restart, with
the same delivery key, and receivers drop the repeat (see :mod:`engine.alerts.webhook`).

``now`` is always passed in, so tests drive the whole thing with a simulated clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from engine.alerts.alert import (
    ESCALATED_SEVERITIES,
    AlertMessage,
    AlertType,
    DeliveryKind,
    Severity,
    ValuesBasis,
)
from engine.alerts.protocol import AlertSink
from engine.errors import AlertDeliveryError
from engine.store import alerts as sql
from engine.store.db import Store

log = logging.getLogger("gliowatch.alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff: base, 2 x base, 4 x base, ... capped at ``max_s``.

    >>> p = RetryPolicy(base_s=30, max_s=900)
    >>> [p.delay_s(attempts=n) for n in (1, 2, 3, 6, 7)]
    [30.0, 60.0, 120.0, 900.0, 900.0]
    """

    base_s: float = 30.0
    max_s: float = 900.0
    max_attempts: int = 0  # 0: never give up

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.max_s < self.base_s:
            msg = f"Arguments 'base_s' and 'max_s' must satisfy 0 < base_s <= max_s, got {self.base_s}, {self.max_s}"
            raise ValueError(msg)
        if self.max_attempts < 0:
            msg = f"Argument 'max_attempts' must be >= 0, got {self.max_attempts}"
            raise ValueError(msg)

    def delay_s(self, *, attempts: int) -> float:
        """Wait after the ``attempts``-th failed attempt."""
        return float(min(self.max_s, self.base_s * 2.0 ** max(attempts - 1, 0)))

    def next_attempt_at(self, *, attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``attempts`` failures; None once ``max_attempts`` is reached."""
        if self.max_attempts and attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay_s(attempts=attempts))


@dataclass(slots=True)
class DeliveryReport:
    delivered: int = 0
    retry_scheduled: int = 0
    gave_up: int = 0
    deferred: int = 0  # not tried this pass: their sink already failed in it
    escalated: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.delivered} delivered, {self.retry_scheduled} to retry, {self.gave_up} given up, "
                f"{self.deferred} deferred, {self.escalated} escalated")


def message_from_row(row: Mapping[str, object]) -> AlertMessage:
    """An outbox row joined with its alert (``due_deliveries``) -> the message a sink sends."""
    study_date = row["study_date"]
    return AlertMessage(
        alert_id=int(row["alert_id"]),  # type: ignore[arg-type]
        idempotency_key=str(row["idempotency_key"]),
        alert_type=AlertType(str(row["alert_type"])),
        severity=Severity(str(row["severity"])),
        patient_key=str(row["patient_key"]),
        study_uid=str(row["study_uid"]),
        study_date=study_date if isinstance(study_date, date) else None,
        reason=str(row["reason"]),
        link=str(row["link"]),
        created_at=row["created_at"],  # type: ignore[arg-type]
        kind=DeliveryKind(str(row["kind"])),
        values_basis=ValuesBasis(str(row.get("values_basis") or ValuesBasis.PROPOSED)),
    )


def deliver_due(
    store: Store, sinks: Mapping[str, AlertSink], *, now: datetime, policy: RetryPolicy, limit: int = 100,
    hold_unconfirmed_critical: bool = False,
) -> DeliveryReport:
    """Send every due outbox row once; record each outcome in its own transaction. With
    ``hold_unconfirmed_critical`` a CRITICAL alert waits for a reader's confirmation of its scan."""
    report = DeliveryReport()
    down: set[str] = set()
    for row in sql.due_deliveries(store, now, limit=limit, hold_unconfirmed_critical=hold_unconfirmed_critical):
        sink_name = str(row["sink"])
        if sink_name in down:
            report.deferred += 1
            continue
        message = message_from_row(row)
        sink = sinks.get(sink_name)
        try:
            if sink is None:
                raise AlertDeliveryError(f"Sink '{sink_name}' is not configured", exam=message.exam,
                                         action="Add it to alerts.sinks, or the row waits.")
            sink.send(message)
        except AlertDeliveryError as exc:
            down.add(sink_name)
            attempts = int(row["attempts"]) + 1  # type: ignore[arg-type]
            retry_at = policy.next_attempt_at(attempts=attempts, now=now)
            error = exc.reason + (f" ({exc.detail})" if exc.detail else "")
            with store.transaction() as con:
                sql.mark_failed(con, int(row["outbox_id"]), error=error, next_attempt_at=retry_at)  # type: ignore[arg-type]
            report.errors.append(error)
            if retry_at is None:
                report.gave_up += 1
                log.error("%s: giving up on sink %s after %d attempts: %s", message.exam, sink_name, attempts, error)
            else:
                report.retry_scheduled += 1
                log.warning("%s: sink %s failed (attempt %d), retry at %s: %s", message.exam, sink_name,
                            attempts, retry_at.isoformat(timespec="seconds"), error)
            continue
        with store.transaction() as con:
            sql.mark_delivered(con, int(row["outbox_id"]), now=now)  # type: ignore[arg-type]
        report.delivered += 1
        log.info("%s: %s %s delivered to %s (rests on %s values)", message.exam, message.kind,
                 message.alert_type, sink_name, message.values_basis)
    return report


def escalate_unacknowledged(
    store: Store, *, now: datetime, after_h: float, sinks: Sequence[str],
    severities: Sequence[Severity] = ESCALATED_SEVERITIES,
) -> int:
    """Queue an ESCALATION delivery for alerts unacknowledged ``after_h`` hours after they were raised."""
    if after_h <= 0:
        return 0
    cutoff = now - timedelta(hours=after_h)
    escalated = 0
    for row in sql.unacknowledged_older_than(store, cutoff, severities=severities):
        with store.transaction() as con:
            if sql.mark_escalated(con, int(row["alert_id"]), sinks=sinks, now=now):
                escalated += 1
                log.warning("alert %s (%s, patient %s) unacknowledged for %.0f h: escalated",
                            row["alert_id"], row["alert_type"], row["patient_key"], after_h)
    return escalated


def run_outbox_once(
    store: Store, sinks: Mapping[str, AlertSink], *, now: datetime, policy: RetryPolicy,
    escalate_after_h: float, limit: int = 100, hold_unconfirmed_critical: bool = False,
) -> DeliveryReport:
    """One pass: escalate what is overdue, then deliver what is due."""
    escalated = escalate_unacknowledged(store, now=now, after_h=escalate_after_h, sinks=list(sinks))
    report = deliver_due(store, sinks, now=now, policy=policy, limit=limit,
                         hold_unconfirmed_critical=hold_unconfirmed_critical)
    report.escalated = escalated
    return report
