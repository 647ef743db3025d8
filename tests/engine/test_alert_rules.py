"""Alert rules, one row per row of clinical-spec 8.7 (and the QA events of issue 7)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from engine.alerts.alert import Alert, AlertType, Severity, idempotency_key
from engine.alerts.rules import AlertInput, AlertThresholds, QaEvents, evaluate_alerts, volume_doubling_time_days
from engine.types import Response

BASE_URL = "http://127.0.0.1:8501"
SCAN = AlertInput(patient_key="P-0A1B2C3D4E", study_uid="1.2.826.0.1.3680043.8.498.77", study_date=date(2025, 3, 14),
                  criteria="RANO 2.0, criteria v1", response=Response.SD, previous_response=Response.SD)


def alerts_for(**changes: object) -> tuple[Alert, ...]:
    return evaluate_alerts(replace(SCAN, **changes), base_url=BASE_URL)


def types_for(**changes: object) -> set[AlertType]:
    return {a.alert_type for a in alerts_for(**changes)}


RAPID = dict(et_ml=4.2, nadir_et_ml=2.0, vdt_days=28.0, interval_days=30)

TABLE = [
    # (name a clinician would recognise, input changes, expected alert types)
    ("stable disease raises nothing", {}, set()),
    ("preliminary PD raises ALERT_PPD",
     dict(response=Response.PRELIM_PD, previous_response=Response.SD), {AlertType.PPD}),
    ("a second scan still equivocal (PRELIM_PD again) does not re-alert",
     dict(response=Response.PRELIM_PD, previous_response=Response.PRELIM_PD), set()),
    ("a preliminary PD already resolved by a later scan (re-assessment) does not alert",
     dict(response=Response.PRELIM_PD, previous_response=Response.SD, final_response=Response.PSEUDOPROGRESSION),
     set()),
    ("PD confirmed after PRELIM_PD raises ALERT_PD_CONFIRMED",
     dict(response=Response.PD, previous_response=Response.PRELIM_PD, pd_date=date(2025, 2, 10)),
     {AlertType.PD_CONFIRMED}),
    ("PD after the PsP window without confirmation raises ALERT_PD_CONFIRMED",
     dict(response=Response.PD, previous_response=Response.SD), {AlertType.PD_CONFIRMED}),
    ("still PD on the next scan does not re-alert",
     dict(response=Response.PD, previous_response=Response.PD), set()),
    ("new measurable lesion raises ALERT_NEW_LESION",
     dict(new_measurable_lesion=True), {AlertType.NEW_LESION}),
    ("new lesion outside the 80 % isodose raises ALERT_NEW_LESION_OUT_OF_FIELD",
     dict(new_measurable_lesion=True, new_lesion_outside_field=True), {AlertType.NEW_LESION_OUT_OF_FIELD}),
    ("rapid growth: +110 %, +2.2 mL, VDT 28 d over 30 d", RAPID, {AlertType.RAPID_GROWTH}),
    ("growth under +40 % vs nadir is not rapid", dict(RAPID, et_ml=2.7, nadir_et_ml=2.0), set()),
    ("growth under 1 mL is not rapid", dict(RAPID, et_ml=0.9, nadir_et_ml=0.4), set()),
    ("VDT of 60 days or more is not rapid", dict(RAPID, vdt_days=60.0), set()),
    ("scans under 28 days apart are not used for VDT", dict(RAPID, interval_days=27), set()),
    ("regrowth from a nadir of zero counts as rapid", dict(RAPID, et_ml=1.5, nadir_et_ml=0.0), {AlertType.RAPID_GROWTH}),
    ("unknown VDT raises nothing", dict(RAPID, vdt_days=None), set()),
    ("non-enhancing growth +45 % where the profile uses it raises ALERT_NONCE_GROWTH",
     dict(nonce_growth_pct=45.0, profile_uses_nonce=True), {AlertType.NONCE_GROWTH}),
    ("non-enhancing growth +45 % under antiangiogenic therapy raises ALERT_NONCE_GROWTH",
     dict(nonce_growth_pct=45.0, antiangiogenic_therapy=True), {AlertType.NONCE_GROWTH}),
    ("non-enhancing growth in IDH-wild-type GBM is informational only: no alert",
     dict(nonce_growth_pct=80.0, profile_uses_nonce=False), set()),
    ("non-enhancing growth +39 % is under the threshold",
     dict(nonce_growth_pct=39.0, profile_uses_nonce=True), set()),
    ("steroids raised with stable imaging raises ALERT_STEROID_ONLY",
     dict(response=Response.STEROID_WATCH, previous_response=Response.SD), {AlertType.STEROID_ONLY}),
    ("steroid watch continuing does not re-alert",
     dict(response=Response.STEROID_WATCH, previous_response=Response.STEROID_WATCH), set()),
    ("study quarantined raises QA_STUDY_QUARANTINED",
     dict(response=None, qa=QaEvents(quarantine_reason="No usable T1, T1c, T2 or FLAIR series")),
     {AlertType.QA_QUARANTINED}),
    ("registration failed raises QA_REGISTRATION_FAILED",
     dict(qa=QaEvents(registration_failure="rotation 31 deg > 20 deg")), {AlertType.QA_REGISTRATION_FAILED}),
    ("segmentation flagged raises QA_SEGMENTATION_FLAGGED",
     dict(qa=QaEvents(segmentation_flags=("enhancing volume 0.0 mL after 12.3 mL",))),
     {AlertType.QA_SEGMENTATION_FLAGGED}),
    ("PD called on a scan 21 days after the previous one raises QA_MEASUREMENT too",
     dict(response=Response.PD, previous_response=Response.SD, scan_interval_days=21),
     {AlertType.PD_CONFIRMED, AlertType.QA_MEASUREMENT}),
    ("confirmed PD with a new lesion and rapid growth raises all three",
     dict(RAPID, response=Response.PD, previous_response=Response.PRELIM_PD, new_measurable_lesion=True),
     {AlertType.PD_CONFIRMED, AlertType.NEW_LESION, AlertType.RAPID_GROWTH}),
]


@pytest.mark.parametrize(("changes", "expected"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_alert_table(changes: dict, expected: set[AlertType]) -> None:
    assert types_for(**changes) == expected


def test_ppd_alert_quotes_psp_probability_confirmation_date_and_advanced_imaging() -> None:
    (alert,) = alerts_for(response=Response.PRELIM_PD, previous_response=Response.SD, psp_probability=0.61,
                          psp_low=0.46, psp_high=0.76, reason="SPD 1,840 mm² is +41 % over the nadir.")
    assert alert.severity is Severity.WARNING
    assert "P(pseudoprogression) 61% (46%-76%)" in alert.reason
    assert "confirmation scan due by 2025-04-11" in alert.reason  # 14 March + 4 weeks
    assert "DSC" in alert.reason and "ADC" in alert.reason and "spectroscopy" in alert.reason
    assert alert.reason.endswith("SPD 1,840 mm² is +41 % over the nadir.")


def test_confirmed_pd_carries_the_back_dated_date() -> None:
    (alert,) = alerts_for(response=Response.PD, previous_response=Response.PRELIM_PD, pd_date=date(2025, 2, 10))
    assert alert.severity is Severity.CRITICAL
    assert "PD dated 2025-02-10 (back-dated to the preliminary-PD scan)" in alert.reason


def test_rapid_growth_reason_quotes_its_numbers() -> None:
    (alert,) = alerts_for(**RAPID)
    assert "4.2 mL vs nadir 2.0 mL (+110 %, +2.2 mL)" in alert.reason
    assert "doubling time 28 days over 30 days" in alert.reason


def test_every_alert_has_type_severity_key_date_reason_and_link() -> None:
    alerts = alerts_for(**RAPID, response=Response.PD, previous_response=Response.PRELIM_PD,
                        new_measurable_lesion=True, qa=QaEvents(segmentation_flags=("x",)))
    assert len(alerts) == 4
    assert [a.severity for a in alerts] == sorted((a.severity for a in alerts),
                                                  key=[Severity.CRITICAL, Severity.WARNING, Severity.INFO].index)
    for a in alerts:
        assert a.patient_key == SCAN.patient_key and a.study_date == SCAN.study_date
        assert a.link == f"{BASE_URL}/?patient={SCAN.patient_key}"
        assert a.reason and a.criteria == "RANO 2.0, criteria v1; alerts v1"


def test_idempotency_key_is_the_same_event_and_only_the_same_event() -> None:
    first = alerts_for(**RAPID)[0]
    again = alerts_for(**RAPID)[0]
    assert first.idempotency_key == again.idempotency_key
    assert first.idempotency_key == idempotency_key(alert_type=AlertType.RAPID_GROWTH, patient_key=SCAN.patient_key,
                                                    study_uid=SCAN.study_uid, criteria=first.criteria)
    other_study = alerts_for(**RAPID, study_uid="1.2.3.4.5")[0]
    other_criteria = evaluate_alerts(replace(SCAN, **RAPID), base_url=BASE_URL,
                                     thresholds=AlertThresholds(version=2))[0]
    assert len({first.idempotency_key, other_study.idempotency_key, other_criteria.idempotency_key}) == 3


def test_thresholds_are_configurable() -> None:
    strict = AlertThresholds(rapid_growth_pct=150.0)
    assert evaluate_alerts(replace(SCAN, **RAPID), base_url=BASE_URL, thresholds=strict) == ()


def test_volume_doubling_time_from_two_volumes() -> None:
    assert volume_doubling_time_days(first_ml=1.0, second_ml=8.0, interval_days=90) == pytest.approx(30.0)
    assert volume_doubling_time_days(first_ml=0.0, second_ml=8.0, interval_days=90) is None


def test_alert_refuses_an_empty_patient_key() -> None:
    with pytest.raises(ValueError, match="patient_key"):
        alerts_for(patient_key="", new_measurable_lesion=True)


def test_adapter_from_a_real_assessment_live_then_rerun() -> None:
    """Confirmed PD traced through assess_patient: alerts as the scans arrive, and none new on a re-run."""
    from datetime import timedelta

    from engine.alerts.adapter import alert_inputs
    from engine.criteria import Mode, load_criteria
    from engine.response import PatientContext, Timepoint, assess_patient

    rt_end = date(2025, 1, 6)
    criteria = load_criteria("rano2")
    context = PatientContext(patient_key="P-0001", rt_end_date=rt_end)
    scans = [Timepoint(scan_date=rt_end + timedelta(weeks=w), study_uid=f"1.2.3.{w}", spd_mm2=spd, et_ml=et,
                       steroid_dose_mg=2.0) for w, spd, et in ((4, 1000, 2.0), (10, 1400, 4.5), (15, 1800, 6.0))]
    seen: dict[str, Alert] = {}
    per_scan = []
    for n in range(1, len(scans) + 1):  # the live stream: each new scan re-assesses the patient
        calls = assess_patient(scans[:n], context, criteria=criteria, mode=Mode.TWO_D)
        inputs = alert_inputs(calls, scans[:n], patient_key="P-0001")
        raised = [a for i in inputs for a in evaluate_alerts(i, base_url=BASE_URL)]
        new = [a for a in raised if a.idempotency_key not in seen]
        seen.update({a.idempotency_key: a for a in raised})
        per_scan.append({a.alert_type for a in new})
    # issue 32: the growth at 10 weeks is inside the pseudoprogression window (a WARNING, not CRITICAL rapid
    # growth), and the third scan's growth is measured over the recent interval (4.5 -> 6.0 mL over 35 days:
    # VDT 84 d, not rapid), no longer from the nadir 77 days back (VDT 49 d)
    assert per_scan == [set(), {AlertType.PPD, AlertType.GROWTH_PSP_WINDOW}, {AlertType.PD_CONFIRMED}]
    (window,) = (a for a in seen.values() if a.alert_type is AlertType.GROWTH_PSP_WINDOW)
    assert window.severity is Severity.WARNING and "possible pseudoprogression" in window.reason
    assert "4.5 mL vs nadir 2.0 mL (+125 %, +2.5 mL)" in window.reason and "over 42 days" in window.reason
    rerun = alert_inputs(assess_patient(scans, context, criteria=criteria, mode=Mode.TWO_D), scans, patient_key="P-0001")
    again = {a.idempotency_key for i in rerun for a in evaluate_alerts(i, base_url=BASE_URL)}
    assert again <= set(seen)  # re-assessing the whole history raises nothing new
    confirmed = next(a for a in seen.values() if a.alert_type is AlertType.PD_CONFIRMED)
    assert f"PD dated {scans[1].scan_date.isoformat()}" in confirmed.reason
