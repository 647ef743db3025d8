"""Progression alerts (clinical-spec 8.7): pure rules -> alerts; an outbox; sinks behind a protocol.

``rules`` turns one assessed study (:class:`AlertInput`) into :class:`Alert` values;
``engine.store.alerts.enqueue_alerts`` writes them with their outbox rows in the assessment's
transaction; ``outbox`` delivers with retries, backoff and escalation to the sinks (``webhook``,
``smtp``, ``dashboard``) built by ``sinks.build_sinks``. Payloads carry no PHI by default
(``payload``).
"""

from engine.alerts.alert import Alert, AlertMessage, AlertType, DeliveryKind, DeliveryStatus, Severity
from engine.alerts.outbox import DeliveryReport, RetryPolicy, deliver_due, escalate_unacknowledged, run_outbox_once
from engine.alerts.protocol import AlertSink
from engine.alerts.rules import AlertInput, AlertThresholds, QaEvents, evaluate_alerts

__all__ = [
    "Alert",
    "AlertInput",
    "AlertMessage",
    "AlertSink",
    "AlertThresholds",
    "AlertType",
    "DeliveryKind",
    "DeliveryReport",
    "DeliveryStatus",
    "QaEvents",
    "RetryPolicy",
    "Severity",
    "deliver_due",
    "escalate_unacknowledged",
    "evaluate_alerts",
    "run_outbox_once",
]
