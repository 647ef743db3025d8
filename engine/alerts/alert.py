"""Alert values: what the rules produce, what the store keeps and what a sink sends.

An :class:`Alert` carries only the pseudonymous patient key, the study's DICOM UID (kept in the
store, left out of payloads unless the privacy settings allow it), dates, a category and a reason
that quotes numbers. Its ``idempotency_key`` is the SHA-256 of (type, patient key, study UID,
criteria version): the same event alerts once, ever, however often the assessment is re-run.

>>> idempotency_key(alert_type=AlertType.PD_CONFIRMED, patient_key="P-1", study_uid="1.2",
...                 criteria="RANO 2.0, criteria v1")[:12]
'5900c71d0323'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class AlertType(StrEnum):
    """Alert categories of clinical-spec 8.7 (values are what the store holds)."""

    PPD = "ALERT_PPD"
    PD_CONFIRMED = "ALERT_PD_CONFIRMED"
    NEW_LESION = "ALERT_NEW_LESION"
    NEW_LESION_OUT_OF_FIELD = "ALERT_NEW_LESION_OUT_OF_FIELD"
    RAPID_GROWTH = "ALERT_RAPID_GROWTH"
    GROWTH_PSP_WINDOW = "ALERT_GROWTH_PSP_WINDOW"  # growth inside the pseudoprogression window: not critical
    DISCORDANT = "ALERT_DISCORDANT_2D_3D"  # 2D and volumetric assessments disagree: a reader decides
    NONCE_GROWTH = "ALERT_NONCE_GROWTH"
    STEROID_ONLY = "ALERT_STEROID_ONLY"
    QA_QUARANTINED = "QA_STUDY_QUARANTINED"
    QA_REGISTRATION_FAILED = "QA_REGISTRATION_FAILED"
    QA_SEGMENTATION_FLAGGED = "QA_SEGMENTATION_FLAGGED"
    QA_MEASUREMENT = "QA_MEASUREMENT"


class Severity(StrEnum):
    CRITICAL = "CRITICAL"  # possible progression: the tumour board should look now
    WARNING = "WARNING"  # needs a person (pending confirmation, a study that was not processed)
    INFO = "INFO"  # for the record (steroid watch)


#: severities whose unacknowledged alerts are escalated.
ESCALATED_SEVERITIES: tuple[Severity, ...] = (Severity.CRITICAL, Severity.WARNING)


class ValuesBasis(StrEnum):
    """What an alert's values rest on when it is sent (issue 32): the latest reader verdict on the
    segmentation of its scan. Values are what the store's read models say."""

    PROPOSED = "proposed"  # automatic values no reader has confirmed yet
    CONFIRMED = "confirmed"  # a reader accepted the scan's segmentation
    REJECTED = "rejected"  # a reader rejected it: the scan's volumes are not evaluable

    @property
    def wording(self) -> str:
        """How a message says it.

        >>> ValuesBasis.PROPOSED.wording
        'proposed values (automatic, not yet confirmed by a reader)'
        """
        return {
            ValuesBasis.PROPOSED: "proposed values (automatic, not yet confirmed by a reader)",
            ValuesBasis.CONFIRMED: "confirmed values (a reader accepted the segmentation)",
            ValuesBasis.REJECTED: "rejected values (a reader rejected the segmentation)",
        }[self]


class DeliveryKind(StrEnum):
    """One outbox row per alert x sink x kind: the first notice, and at most one escalation."""

    NOTICE = "NOTICE"
    ESCALATION = "ESCALATION"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"  # not yet sent, or a retry is scheduled at next_attempt_at
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"  # gave up after the configured number of attempts


def idempotency_key(*, alert_type: AlertType, patient_key: str, study_uid: str, criteria: str) -> str:
    """SHA-256 (hex) of the event's identity; never includes anything but these four values."""
    text = "\x1f".join((str(alert_type), patient_key, study_uid, criteria))
    return hashlib.sha256(text.encode()).hexdigest()


def dashboard_link(base_url: str, patient_key: str) -> str:
    """``{base_url}/?patient=<key>``.

    >>> dashboard_link("http://127.0.0.1:8501/", "P-0A1B2C3D4E")
    'http://127.0.0.1:8501/?patient=P-0A1B2C3D4E'
    """
    return f"{base_url.rstrip('/')}/?patient={patient_key}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert as the rules raise it (before the store gives it an ``alert_id``)."""

    alert_type: AlertType
    severity: Severity
    patient_key: str
    study_uid: str
    study_date: date | None
    reason: str
    link: str
    criteria: str

    def __post_init__(self) -> None:
        if not self.patient_key:
            msg = "Argument 'patient_key' must be a non-empty pseudonymous key"
            raise ValueError(msg)
        if not self.reason:
            msg = "Argument 'reason' must say why the alert was raised"
            raise ValueError(msg)

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(alert_type=self.alert_type, patient_key=self.patient_key,
                               study_uid=self.study_uid, criteria=self.criteria)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertMessage:
    """What a sink is asked to deliver: a stored alert, as a first notice or an escalation."""

    alert_id: int
    idempotency_key: str
    alert_type: AlertType
    severity: Severity
    patient_key: str
    study_uid: str
    study_date: date | None
    reason: str
    link: str
    created_at: datetime
    kind: DeliveryKind = DeliveryKind.NOTICE
    values_basis: ValuesBasis = ValuesBasis.PROPOSED  # at the time of sending

    def __post_init__(self) -> None:
        object.__setattr__(self, "values_basis", ValuesBasis(self.values_basis))

    @property
    def delivery_key(self) -> str:
        """What a receiver dedupes on: the alert's key, plus ``:escalation`` for an escalation."""
        if self.kind is DeliveryKind.ESCALATION:
            return f"{self.idempotency_key}:escalation"
        return self.idempotency_key

    @property
    def exam(self) -> str:
        """How errors and logs name it: pseudonymous key, scan date, alert id."""
        when = self.study_date.isoformat() if self.study_date else "date unknown"
        return f"patient {self.patient_key}, MRI {when}, alert {self.alert_id}"

    @property
    def subject(self) -> str:
        prefix = "ESCALATED: " if self.kind is DeliveryKind.ESCALATION else ""
        when = self.study_date.isoformat() if self.study_date else "date unknown"
        return (f"[GlioWatch] {prefix}{self.severity} {self.alert_type} {self.patient_key} MRI {when}"
                f" ({self.values_basis} values)")
