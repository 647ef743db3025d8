"""The worklist's urgency rule (engine.urgency), one row per case a tumour board would name."""

from __future__ import annotations

from datetime import date

import pytest

from engine.urgency import PatientFindings, Urgency, classify_urgency, rank_patients

D = date(2025, 5, 1)


@pytest.mark.parametrize(("case", "findings", "urgency", "next_action"), [
    ("confirmed PD, alerts open", PatientFindings("p", pd_scan_date=D, latest_call="PD",
                                                  open_alert_severities=("CRITICAL",)),
     Urgency.CONFIRMED_PD, "Tumour board"),
    ("confirmed PD, alerts acknowledged, later scan NE", PatientFindings("p", pd_scan_date=D, latest_call="NE"),
     Urgency.CONFIRMED_PD, "Tumour board"),
    ("preliminary PD awaiting confirmation", PatientFindings("p", latest_call="PRELIM_PD", latest_call_date=D,
                                                             awaiting_confirmation=True),
     Urgency.PRELIM_PD, "Follow-up MRI"),
    ("2D/3D discordant", PatientFindings("p", latest_call="DISCORDANT", latest_call_date=D),
     Urgency.DISCORDANT, "Reader review"),
    ("segmentation flags not reviewed", PatientFindings("p", latest_call="SD",
                                                        unreviewed_flags=("2025-05-01: segmentation flags: x",)),
     Urgency.FLAGGED, "Reader review of the flagged scan"),
    ("open critical alert only", PatientFindings("p", latest_call="SD", open_alert_severities=("CRITICAL",)),
     Urgency.NEW_ALERTS, "acknowledge"),
    ("stable, nothing open", PatientFindings("p", latest_call="SD"), Urgency.ROUTINE, "Routine follow-up"),
    ("not assessed yet", PatientFindings("p"), Urgency.ROUTINE, "Routine follow-up"),
    ("pseudoprogression resolved", PatientFindings("p", latest_call="SD"), Urgency.ROUTINE, "Routine"),
    ("preliminary PD outranks discordance and flags",
     PatientFindings("p", latest_call="PRELIM_PD", awaiting_confirmation=True, unreviewed_flags=("f",)),
     Urgency.PRELIM_PD, "Follow-up MRI"),
])
def test_urgency_tier(case: str, findings: PatientFindings, urgency: Urgency, next_action: str) -> None:
    call = classify_urgency(findings)
    assert call.urgency is urgency, case
    assert next_action.lower() in call.next_action.lower(), case
    assert call.reason, case


def _p(key: str, *, scan: date, **kw: object) -> PatientFindings:
    return PatientFindings(key, last_scan_date=scan, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("case", "patients", "expected"), [
    ("tiers before everything else",
     [_p("alerts", scan=date(2025, 6, 1), open_alert_severities=("CRITICAL",) * 5),
      _p("flag", scan=date(2025, 1, 1), unreviewed_flags=("f",)),
      _p("pd", scan=date(2024, 1, 1), pd_scan_date=date(2023, 12, 1)),
      _p("disc", scan=date(2025, 2, 1), latest_call="DISCORDANT"),
      _p("ppd", scan=date(2025, 1, 1), awaiting_confirmation=True),
      _p("calm", scan=date(2025, 7, 1))],
     ["pd", "ppd", "disc", "flag", "alerts", "calm"]),
    ("alerts by severity, not by number",
     [_p("many-info", scan=date(2025, 6, 1), open_alert_severities=("INFO",) * 9),
      _p("one-critical", scan=date(2025, 1, 1), open_alert_severities=("CRITICAL",)),
      _p("one-warning", scan=date(2025, 3, 1), open_alert_severities=("WARNING",))],
     ["one-critical", "one-warning", "many-info"]),
    ("acknowledging does not move a confirmed PD below an open alert",
     [_p("critical-alert", scan=date(2025, 6, 1), open_alert_severities=("CRITICAL", "CRITICAL")),
      _p("pd-acknowledged", scan=date(2025, 1, 1), pd_scan_date=date(2025, 1, 1), latest_call="NE")],
     ["pd-acknowledged", "critical-alert"]),
    ("ties by most recent scan",
     [_p("older", scan=date(2025, 1, 1), awaiting_confirmation=True),
      _p("newer", scan=date(2025, 4, 1), awaiting_confirmation=True)],
     ["newer", "older"]),
    ("same tier: an unseen alert first, then the most recent scan",
     [_p("newer-no-alert", scan=date(2025, 4, 1), awaiting_confirmation=True),
      _p("older-warning", scan=date(2025, 1, 1), awaiting_confirmation=True, open_alert_severities=("WARNING",))],
     ["older-warning", "newer-no-alert"]),
    ("same tier, same scan date: by key",
     [_p("b", scan=D), _p("a", scan=D)], ["a", "b"]),
])
def test_rank_patients(case: str, patients: list[PatientFindings], expected: list[str]) -> None:
    assert [p.patient_key for p in rank_patients(patients)] == expected, case


def test_unknown_severity_is_refused() -> None:
    with pytest.raises(ValueError, match="Argument 'open_alert_severities'"):
        PatientFindings("p", open_alert_severities=("URGENT",))
