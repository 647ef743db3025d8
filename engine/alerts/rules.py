"""Alert rules (clinical-spec 8.7): one assessed study -> the alerts it raises. Pure, no I/O.

The assessment output is adapted in one place into :class:`AlertInput` (a small frozen value of
this module), so the rules do not depend on how the response engine shapes its results. Each
alert's reason quotes the numbers that triggered it; the thresholds marked [H] in the spec live in
:class:`AlertThresholds` with a version that is part of every alert's criteria string.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from engine.alerts.alert import Alert, AlertType, Severity, dashboard_link
from engine.types import Response

ADVANCED_IMAGING = "perfusion (DSC rCBV), diffusion (ADC) or MR spectroscopy may help separate it from pseudoprogression"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertThresholds:
    """Alert thresholds (clinical-spec 8.7; [H] unless noted). Bump ``version`` on any change."""

    version: int = 1
    rapid_growth_pct: float = 40.0  # SOV_ET >= +40 % vs nadir
    rapid_vdt_days: float = 60.0  # exponential volume-doubling time below 60 days
    rapid_min_interval_days: int = 28  # between two scans >= 28 days apart [V] S31
    rapid_min_increase_ml: float = 1.0  # absolute increase >= 1 mL
    nonce_growth_pct: float = 40.0  # SNFH/FLAIR >= +40 % vs nadir
    min_scan_interval_days: int = 28  # a PD call on a shorter interval gets a QA_MEASUREMENT note


@dataclass(frozen=True, slots=True, kw_only=True)
class QaEvents:
    """Quality events of the study; any of them raises a QA_* alert."""

    quarantine_reason: str = ""  # non-empty: the study was quarantined
    registration_failure: str = ""  # non-empty: registration failed its quality check
    segmentation_flags: tuple[str, ...] = ()  # sanity-check findings on the segmentation


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertInput:
    """What the rules need from one assessed study (None: not known / not evaluable)."""

    patient_key: str
    study_uid: str
    study_date: date | None
    criteria: str  # e.g. "RANO 2.0, criteria v1": part of the idempotency key
    response: Response | None = None  # the call on this date
    previous_response: Response | None = None  # the call on the patient's previous scan
    final_response: Response | None = None  # this scan's label once later scans are known
    pd_date: date | None = None  # back-dated PD date when the response is PD
    psp_probability: float | None = None
    psp_low: float | None = None
    psp_high: float | None = None
    confirm_interval_weeks: int = 4
    reason: str = ""  # the response call's reason (quotes its numbers)
    new_measurable_lesion: bool | None = None
    new_lesion_outside_field: bool | None = None
    et_ml: float | None = None
    nadir_et_ml: float | None = None
    previous_et_ml: float | None = None  # ET volume on the patient's previous scan (None: unknown)
    vdt_days: float | None = None  # exponential VDT over the recent interval (an earlier scan and this one)
    interval_days: int | None = None  # days between the scans the VDT was computed over
    weeks_post_rt: float | None = None  # None: RT end unknown
    psp_window_weeks: float = 12.0  # PSP_WINDOW_WEEKS of the profile
    scan_interval_days: int | None = None  # days since the patient's previous scan
    nonce_growth_pct: float | None = None  # SNFH volume change vs its nadir, in %
    profile_uses_nonce: bool = False  # NONCE_FOR_PD for this patient (IDH-mutant / LGG profile)
    antiangiogenic_therapy: bool = False
    steroid_watch: bool = False
    qa: QaEvents = field(default_factory=QaEvents)


def volume_doubling_time_days(*, first_ml: float, second_ml: float, interval_days: float) -> float | None:
    """Exponential VDT = interval * ln 2 / ln(V2 / V1); None when the volume did not grow.

    >>> round(volume_doubling_time_days(first_ml=2.0, second_ml=4.0, interval_days=30), 6)
    30.0
    >>> volume_doubling_time_days(first_ml=4.0, second_ml=3.0, interval_days=30) is None
    True
    """
    if first_ml <= 0 or second_ml <= first_ml or interval_days <= 0:
        return None
    return interval_days * math.log(2.0) / math.log(second_ml / first_ml)


def evaluate_alerts(
    data: AlertInput, *, base_url: str, thresholds: AlertThresholds = AlertThresholds()
) -> tuple[Alert, ...]:
    """Every alert one assessed study raises, most severe first."""
    criteria = f"{data.criteria}; alerts v{thresholds.version}"
    link = dashboard_link(base_url, data.patient_key)
    raised: list[tuple[AlertType, Severity, str]] = []
    for rule in (_ppd, _pd_confirmed, _discordant, _new_lesion, _rapid_growth, _nonce_growth, _steroid_only,
                 _qa_measurement):
        found = rule(data, thresholds)
        if found is not None:
            raised.append(found)
    raised.extend(_qa_events(data.qa))
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    raised.sort(key=lambda r: order[r[1]])
    return tuple(
        Alert(alert_type=kind, severity=severity, patient_key=data.patient_key, study_uid=data.study_uid,
              study_date=data.study_date, reason=reason, link=link, criteria=criteria)
        for kind, severity, reason in raised
    )


def _became(data: AlertInput, state: Response) -> bool:
    return data.response is state and data.previous_response is not state


def _with_call(text: str, data: AlertInput) -> str:
    return f"{text} {data.reason}".strip() if data.reason else text


def _pct(value: float) -> str:
    return f"{value:+.0f} %"


def _ppd(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    # a preliminary PD that a later scan has already resolved (re-assessment of history) is not news
    if not _became(data, Response.PRELIM_PD) or data.final_response not in (None, Response.PRELIM_PD):
        return None
    psp = "P(pseudoprogression) not estimated"
    if data.psp_probability is not None:
        psp = f"P(pseudoprogression) {data.psp_probability:.0%}"
        if data.psp_low is not None and data.psp_high is not None:
            psp += f" ({data.psp_low:.0%}-{data.psp_high:.0%})"
    confirm = "confirmation scan due"
    if data.study_date is not None:
        due = data.study_date + timedelta(weeks=data.confirm_interval_weeks)
        confirm = f"confirmation scan due by {due.isoformat()}"
    text = f"Preliminary progression: {psp}; {confirm}; {ADVANCED_IMAGING}."
    return AlertType.PPD, Severity.WARNING, _with_call(text, data)


def _pd_confirmed(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    if not _became(data, Response.PD):
        return None
    pd_date = data.pd_date or data.study_date
    when = pd_date.isoformat() if pd_date else "date unknown"
    if data.previous_response is Response.PRELIM_PD:
        text = f"Progression confirmed; PD dated {when} (back-dated to the preliminary-PD scan)."
    elif pd_date is not None and data.study_date is not None and pd_date < data.study_date:
        text = f"Progression; PD dated {when} (back-dated)."
    else:
        text = f"Progression; PD dated {when}."
    return AlertType.PD_CONFIRMED, Severity.CRITICAL, _with_call(text, data)


def _new_lesion(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    if not data.new_measurable_lesion and not data.new_lesion_outside_field:
        return None
    if data.new_lesion_outside_field:
        text = ("New enhancing lesion outside the 80 % isodose of the RT plan: progression even inside "
                "the 12-week pseudoprogression window.")
        return AlertType.NEW_LESION_OUT_OF_FIELD, Severity.CRITICAL, text
    weeks = data.weeks_post_rt
    if weeks is not None and 0 <= weeks < data.psp_window_weeks:  # a preliminary PD to confirm (issue 32)
        return AlertType.NEW_LESION, Severity.WARNING, (
            f"New measurable enhancing lesion {weeks:.1f} weeks after RT end, inside the "
            f"{data.psp_window_weeks:g}-week pseudoprogression window: possible pseudoprogression, to be confirmed "
            "by the next scan.")
    return AlertType.NEW_LESION, Severity.CRITICAL, "New measurable enhancing lesion."


def _rapid_growth(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    """8.7 ALERT_RAPID_GROWTH on the recent interval: +40 % over the nadir, and growing now (over the
    previous scan, with the VDT and the absolute increase taken over the recent interval), so a lesion
    shrinking since its previous scan never alerts. Inside the pseudoprogression window the same growth
    is a WARNING that says possible pseudoprogression, not a CRITICAL rapid growth (issue 32)."""
    et, nadir, vdt, days = data.et_ml, data.nadir_et_ml, data.vdt_days, data.interval_days
    if et is None or nadir is None or vdt is None or days is None:
        return None
    previous = data.previous_et_ml
    if previous is not None and et <= previous:
        return None  # shrinking or flat since the previous scan: no growth to alert on
    reference = nadir if previous is None else previous
    increase_ml = et - reference
    growth_pct = math.inf if nadir <= 0 else 100.0 * (et - nadir) / nadir
    if not (growth_pct >= t.rapid_growth_pct and increase_ml >= t.rapid_min_increase_ml
            and days >= t.rapid_min_interval_days and 0 <= vdt < t.rapid_vdt_days):
        return None
    pct = "from zero" if math.isinf(growth_pct) else _pct(growth_pct)
    recent = "" if previous is None else f"; {previous:.1f} mL on the previous scan (+{increase_ml:.1f} mL)"
    numbers = (f"enhancing volume {et:.1f} mL vs nadir {nadir:.1f} mL ({pct}, +{et - nadir:.1f} mL){recent}; "
               f"volume-doubling time {vdt:.0f} days over {days} days "
               f"(thresholds: >= +{t.rapid_growth_pct:.0f} %, >= {t.rapid_min_increase_ml:g} mL, "
               f"VDT < {t.rapid_vdt_days:.0f} d over >= {t.rapid_min_interval_days} d)")
    weeks = data.weeks_post_rt
    if weeks is not None and 0 <= weeks < data.psp_window_weeks:
        text = (f"Growth inside the {data.psp_window_weeks:g}-week pseudoprogression window ({weeks:.1f} weeks after "
                f"RT end): possible pseudoprogression, to be confirmed or refuted by the next scan, not a rapid-growth "
                f"alert; {numbers}.")
        return AlertType.GROWTH_PSP_WINDOW, Severity.WARNING, text
    return AlertType.RAPID_GROWTH, Severity.CRITICAL, f"Rapid growth: {numbers}."


def _discordant(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    if data.response is not Response.DISCORDANT:
        return None
    text = ("2D and volumetric assessments disagree on progression: not a PD call; a reader should review the "
            "measurements on the images.")
    return AlertType.DISCORDANT, Severity.WARNING, _with_call(text, data)


def _nonce_growth(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    if data.nonce_growth_pct is None or data.nonce_growth_pct < t.nonce_growth_pct:
        return None
    if not (data.profile_uses_nonce or data.antiangiogenic_therapy):
        return None  # informational only for IDH-wild-type GBM (clinical-spec 8.7)
    why = "non-enhancing disease counts for this patient's profile" if data.profile_uses_nonce \
        else "under antiangiogenic therapy"
    text = (f"Non-enhancing (T2/FLAIR) volume {_pct(data.nonce_growth_pct)} vs its nadir "
            f"(threshold +{t.nonce_growth_pct:.0f} %); {why}: consider progression.")
    return AlertType.NONCE_GROWTH, Severity.WARNING, text


def _steroid_only(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    if not (data.steroid_watch or data.response is Response.STEROID_WATCH):
        return None
    if data.previous_response is Response.STEROID_WATCH:
        return None
    text = "Steroid dose raised with stable imaging: neither SD nor PD until the dose is back to baseline."
    return AlertType.STEROID_ONLY, Severity.INFO, _with_call(text, data)


def _qa_measurement(data: AlertInput, t: AlertThresholds) -> tuple[AlertType, Severity, str] | None:
    days = data.scan_interval_days
    if days is None or days >= t.min_scan_interval_days:
        return None
    if data.response not in (Response.PD, Response.PRELIM_PD):
        return None
    text = (f"Progression called on a scan {days} days after the previous one "
            f"(< {t.min_scan_interval_days} days): the measurement change may be within noise.")
    return AlertType.QA_MEASUREMENT, Severity.WARNING, text


def _qa_events(qa: QaEvents) -> list[tuple[AlertType, Severity, str]]:
    out: list[tuple[AlertType, Severity, str]] = []
    if qa.quarantine_reason:
        out.append((AlertType.QA_QUARANTINED, Severity.WARNING,
                    f"Study quarantined, not assessed: {qa.quarantine_reason}"))
    if qa.registration_failure:
        out.append((AlertType.QA_REGISTRATION_FAILED, Severity.WARNING,
                    f"Registration failed, study not compared with earlier scans: {qa.registration_failure}"))
    if qa.segmentation_flags:
        out.append((AlertType.QA_SEGMENTATION_FLAGGED, Severity.WARNING,
                    "Segmentation flagged for review: " + "; ".join(qa.segmentation_flags)))
    return out
