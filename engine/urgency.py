"""Worklist urgency: which patient a tumour board should look at first, and why (pure).

The rule, one tier per patient, most urgent first:

1. ``CONFIRMED_PD``: a scan since the last baseline was called PD (at the time, or finally once a
   later scan confirmed a preliminary PD). Later scans are NE by design ("PD was called on …"),
   so the patient's *latest* call is not what ranks it; acknowledging its alerts does not move it.
2. ``PRELIM_PD``: the latest call is a preliminary PD still awaiting confirmation.
3. ``DISCORDANT``: the latest call is DISCORDANT (2D and volumetric assessments disagree): a
   reader decides.
4. ``FLAGGED``: scans with QA or segmentation flags (failed registration QC, segmentation sanity
   flags, an open quarantine) that no board decision has reviewed yet.
5. ``NEW_ALERTS``: unacknowledged alerts, by their highest severity.
6. ``ROUTINE``: nothing waits.

Within a tier: the highest severity among open alerts first (never their number), then the most
recent scan, then the pseudonymous key (so the order is total and reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import IntEnum

#: open-alert severities, most severe first (``engine.alerts.alert.Severity`` values).
SEVERITY_ORDER: tuple[str, ...] = ("CRITICAL", "WARNING", "INFO")


class Urgency(IntEnum):
    """Worklist tier; a lower value is more urgent."""

    CONFIRMED_PD = 1
    PRELIM_PD = 2
    DISCORDANT = 3
    FLAGGED = 4
    NEW_ALERTS = 5
    ROUTINE = 6

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Urgency.CONFIRMED_PD: "Confirmed progression",
    Urgency.PRELIM_PD: "Preliminary PD, awaiting confirmation",
    Urgency.DISCORDANT: "2D/3D discordant, awaiting a reader",
    Urgency.FLAGGED: "Flagged scan, not reviewed",
    Urgency.NEW_ALERTS: "New alerts",
    Urgency.ROUTINE: "Routine follow-up",
}


@dataclass(frozen=True, slots=True)
class PatientFindings:
    """What the store says about one patient, as the ranking needs it."""

    patient_key: str
    last_scan_date: date | None = None
    latest_call: str | None = None  # coalesce(final, as called) of the latest assessed scan
    latest_call_date: date | None = None
    pd_scan_date: date | None = None  # latest scan called PD since the last baseline
    awaiting_confirmation: bool = False
    unreviewed_flags: tuple[str, ...] = ()  # one short reason per flagged, unreviewed scan
    open_alert_severities: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        unknown = set(self.open_alert_severities) - set(SEVERITY_ORDER)
        if unknown:
            msg = f"Argument 'open_alert_severities' must hold {SEVERITY_ORDER} only, got {sorted(unknown)}"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class UrgencyCall:
    """A patient's tier, with the reason quoting the facts, and what to do next."""

    urgency: Urgency
    reason: str
    next_action: str
    top_severity: str | None  # highest open-alert severity, or None


def top_severity(severities: tuple[str, ...]) -> str | None:
    """The most severe of ``severities``, or None when there are none.

    >>> top_severity(("INFO", "CRITICAL", "WARNING"))
    'CRITICAL'
    >>> top_severity(()) is None
    True
    """
    return min(severities, key=SEVERITY_ORDER.index) if severities else None


def classify_urgency(findings: PatientFindings) -> UrgencyCall:
    """The tier of one patient (see the module docstring for the rule)."""
    severity = top_severity(findings.open_alert_severities)
    n_open = len(findings.open_alert_severities)
    if findings.pd_scan_date is not None:
        return UrgencyCall(Urgency.CONFIRMED_PD, f"PD called on the scan of {findings.pd_scan_date:%Y-%m-%d}",
                           "Tumour board: decide further treatment", severity)
    if findings.awaiting_confirmation:
        return UrgencyCall(Urgency.PRELIM_PD,
                           f"Preliminary PD on the scan of {_day(findings.latest_call_date)}, not yet confirmed",
                           "Follow-up MRI to confirm or refute progression (pseudoprogression?)", severity)
    if findings.latest_call == "DISCORDANT":
        return UrgencyCall(Urgency.DISCORDANT,
                           f"2D and volumetric assessments disagree on the scan of {_day(findings.latest_call_date)}",
                           "Reader review: decide between the 2D and the volumetric call", severity)
    if findings.unreviewed_flags:
        return UrgencyCall(Urgency.FLAGGED, "; ".join(findings.unreviewed_flags),
                           "Reader review of the flagged scan", severity)
    if severity is not None:
        return UrgencyCall(Urgency.NEW_ALERTS, f"{n_open} open alert(s), highest {severity}",
                           "Review and acknowledge the alerts", severity)
    return UrgencyCall(Urgency.ROUTINE, "Nothing waits", "Routine follow-up", None)


def rank_key(findings: PatientFindings) -> tuple[int, int, int, str]:
    """Sort key: tier, then highest open-alert severity, then most recent scan, then key."""
    call = classify_urgency(findings)
    severity_rank = SEVERITY_ORDER.index(call.top_severity) if call.top_severity else len(SEVERITY_ORDER)
    newest_first = -findings.last_scan_date.toordinal() if findings.last_scan_date else 0
    return (int(call.urgency), severity_rank, newest_first, findings.patient_key)


def rank_patients(patients: list[PatientFindings]) -> list[PatientFindings]:
    """``patients`` most urgent first."""
    return sorted(patients, key=rank_key)


def _day(value: date | None) -> str:
    return f"{value:%Y-%m-%d}" if value else "unknown date"
