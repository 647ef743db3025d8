"""Issue 32: clinical courses the response engine must follow, named as a clinician would.

Lesions outside the baseline targets entering the assessment (clinical-spec 8.4 row 2), the scan
that resolves a preliminary PD getting a response category (pseudoprogression being the final label
of the preliminary-PD scan, 8.5), 2D and volumetric assessments side by side (discordance, 4.3),
and the alerts that follow from them (8.7).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta
from pathlib import Path

import pytest

from engine.alerts import evaluate_alerts
from engine.alerts.adapter import alert_inputs
from engine.alerts.alert import AlertType, Severity
from engine.criteria import CRITERIA_DIR, Mode, load_criteria
from engine.response import PatientContext, ResponseCall, Timepoint, assess_patient
from engine.response.inputs import Mgmt
from engine.risk import psp_at_preliminary_pds
from engine.types import Response as R

RT_END = date(2025, 1, 6)
RANO2 = load_criteria("rano2")
BASE_URL = "http://127.0.0.1:8501"


def scan(weeks: float, spd: float | None = 0.0, **kwargs: object) -> Timepoint:
    kwargs.setdefault("steroid_dose_mg", 2.0)
    day = RT_END + timedelta(days=round(weeks * 7))
    return Timepoint(scan_date=day, study_uid=f"1.2.826.{day:%Y%m%d}", spd_mm2=spd, **kwargs)  # type: ignore[arg-type]


def run(scans: list[Timepoint], *, criteria=RANO2, mode=Mode.TWO_D, **ctx: object) -> list[ResponseCall]:
    context = PatientContext(patient_key="P-0032", rt_end_date=RT_END, **ctx)  # type: ignore[arg-type]
    return list(assess_patient(scans, context, criteria=criteria, mode=mode))


def calls(result: list[ResponseCall]) -> list[tuple[str, str]]:
    return [(c.category.value, c.final_category.value) for c in result]


def became(weeks: float, product_mm2: float, et_ml: float, spd: float = 0.0) -> Timepoint:
    """A lesion non-measurable at baseline, measurable on this scan with the given product."""
    return scan(weeks, spd, et_ml=et_ml, became_measurable=True, emerging_spd_mm2=product_mm2)


# --- the pseudoprogression course ----------------------------------------------------------------


def test_non_measurable_baseline_lesion_measurable_at_9_weeks_then_shrinking_is_pseudoprogression() -> None:
    """Non-measurable baseline -> 31.5 x 27.9 mm at 9 weeks after RT -> preliminary PD (with a PsP
    probability) -> shrinks -> pseudoprogression, the resolving scan SD."""
    scans = [scan(4, 0.0, et_ml=2.1), became(9, 31.5 * 27.9, 10.2), became(14, 18.0 * 16.0, 3.4),
             scan(20, 0.0, et_ml=2.0, became_measurable=False, emerging_spd_mm2=0.0)]
    context = PatientContext(patient_key="P-0032", rt_end_date=RT_END, mgmt=Mgmt.METHYLATED)
    result = list(assess_patient(scans, context, criteria=RANO2, mode=Mode.TWO_D))
    assert calls(result) == [("BASELINE", "BASELINE"), ("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD"), ("SD", "SD")]
    ppd = result[1]
    assert "non-measurable at baseline is now measurable" in ppd.reason and "879 mm²" in ppd.reason
    assert "clinical-spec 8.4 row 2" in ppd.reason and "inside the 12-week pseudoprogression window" in ppd.reason
    assert "SPD 0.0 mm² now" not in ppd.reason and ppd.pd_date is None
    assert "pseudoprogression" in ppd.final_reason and "-67 %" in ppd.final_reason  # 288 vs 879 mm²
    assert "which was therefore pseudoprogression" in result[2].reason
    assert R.PSEUDOPROGRESSION not in {c.category for c in result}  # never the category of a resolving scan
    risks = psp_at_preliminary_pds(result, scans, context=context, criteria=RANO2)
    assert set(risks) == {ppd.study_uid}
    # MGMT methylated, 9 weeks after RT (inside the window: odds x 1): logit -0.80 + 1.25 (clinical-spec 8.6)
    assert risks[ppd.study_uid].probability == pytest.approx(1 / (1 + math.exp(-0.45)))


def test_the_preliminary_pd_raises_the_ppd_alert_with_its_psp_probability() -> None:
    scans = [scan(4, 0.0, et_ml=2.1), became(9, 879.0, 10.2)]
    context = PatientContext(patient_key="P-0032", rt_end_date=RT_END)
    result = list(assess_patient(scans, context, criteria=RANO2, mode=Mode.TWO_D))
    risks = psp_at_preliminary_pds(result, scans, context=context, criteria=RANO2)
    inputs = alert_inputs(result, scans, patient_key="P-0032", risks=risks)
    alerts = [a for i in inputs for a in evaluate_alerts(i, base_url=BASE_URL)]
    (ppd,) = (a for a in alerts if a.alert_type is AlertType.PPD)
    assert "P(pseudoprogression) 43%" in ppd.reason  # MGMT unknown: the pooled 199/466 prior
    assert not [a for a in alerts if a.severity is Severity.CRITICAL]  # growth in the window: not critical


LESION_COURSES = [
    # (name a clinician would recognise, scans, expected (category, final) per scan after the baseline)
    ("new measurable lesion 8 weeks after RT with no measurable disease at baseline -> preliminary PD",
     [scan(4, 0.0), scan(8, 0.0, new_measurable_lesion=True, emerging_spd_mm2=400.0)],
     [("PRELIM_PD", "PRELIM_PD")]),
    ("lesion non-measurable at baseline measurable 20 weeks after RT (past the window) -> PD at once",
     [scan(4, 0.0, et_ml=1.0), became(20, 600.0, 6.0)], [("PD", "PD")]),
    ("lesion measurable at 9 weeks and +30 % at the confirmation scan -> PD confirmed, dated back",
     [scan(4, 0.0, et_ml=1.0), became(9, 600.0, 6.0), became(14, 780.0, 8.5)],
     [("PRELIM_PD", "PD"), ("PD", "PD")]),
    ("lesion measurable at 9 weeks, +10 % at the confirmation scan -> still preliminary",
     [scan(4, 0.0, et_ml=1.0), became(9, 600.0, 6.0), became(14, 660.0, 6.5)],
     [("PRELIM_PD", "PRELIM_PD"), ("PRELIM_PD", "PRELIM_PD")]),
    ("after pseudoprogression the same lesion, stable, raises no new preliminary PD",
     [scan(4, 0.0, et_ml=1.0), became(9, 600.0, 6.0), became(14, 300.0, 3.0), became(20, 320.0, 3.1)],
     [("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD"), ("SD", "SD")]),
    ("after pseudoprogression the same lesion growing +50 % over its smallest size -> progression again",
     [scan(4, 0.0, et_ml=1.0), became(9, 600.0, 6.0), became(14, 300.0, 3.0), became(24, 450.0, 4.6)],
     [("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD"), ("PD", "PD")]),
    ("targets shrinking while a lesion non-measurable at baseline becomes measurable -> preliminary PD",
     [scan(4, 1000.0, et_ml=8.0), became(9, 500.0, 9.0, spd=800.0)], [("PRELIM_PD", "PRELIM_PD")]),
]


@pytest.mark.parametrize(("scans", "expected"), [c[1:] for c in LESION_COURSES], ids=[c[0] for c in LESION_COURSES])
def test_lesions_outside_the_baseline_targets_enter_the_assessment(scans: list[Timepoint], expected: list) -> None:
    result = run(scans)
    assert calls(result)[1:] == expected, [c.reason for c in result]


def test_a_confirmed_pd_from_a_newly_measurable_lesion_is_dated_to_the_preliminary_scan() -> None:
    result = run([scan(4, 0.0, et_ml=1.0), became(9, 600.0, 6.0), became(14, 780.0, 8.5)])
    assert result[1].pd_date == result[2].pd_date == result[1].scan_date
    assert "+30 % over the preliminary-PD scan's 600 mm²" in result[2].reason


# --- 2D and volumetric side by side ----------------------------------------------------------------------

DISCORDANCE = [
    # (name, scans (spd mm², et mL at weeks), mode, expected (category, final) of the last scan)
    ("flat enhancing volume with a drifting longest diameter (SPD +26 %, volume 0 %) -> discordant, not PD",
     [(4, 729.0, 7.8), (20, 918.0, 7.8)], "2d", ("DISCORDANT", "DISCORDANT")),
    ("the same drift inside the 12-week window -> discordant, not preliminary PD",
     [(4, 729.0, 7.8), (10, 918.0, 7.8)], "2d", ("DISCORDANT", "DISCORDANT")),
    ("SPD +40 % and volume +50 % -> PD (the measures agree)",
     [(4, 1000.0, 8.0), (20, 1400.0, 12.0)], "2d", ("PD", "PD")),
    ("volume +50 % with the SPD flat -> discordant (the reverse)",
     [(4, 1000.0, 8.0), (20, 1050.0, 12.0)], "2d", ("DISCORDANT", "DISCORDANT")),
    ("volume +30 %, SPD +5 % -> SD (no PD on either measure)",
     [(4, 1000.0, 8.0), (20, 1050.0, 10.4)], "2d", ("SD", "SD")),
    ("volumetric mode: volume +50 % with the SPD flat -> discordant",
     [(4, 1000.0, 8.0), (20, 1000.0, 12.0)], "3d", ("DISCORDANT", "DISCORDANT")),
    ("volumetric mode: volume +50 % and SPD +30 % -> PD",
     [(4, 1000.0, 8.0), (20, 1300.0, 12.0)], "3d", ("PD", "PD")),
    ("a volume nadir under 1 mL is too noisy to overrule the 2D call -> PD",
     [(4, 200.0, 0.8), (20, 300.0, 0.8)], "2d", ("PD", "PD")),
]


@pytest.mark.parametrize(("course", "mode", "expected"), [c[1:] for c in DISCORDANCE], ids=[c[0] for c in DISCORDANCE])
def test_2d_and_volumetric_assessments_side_by_side(course: list, mode: str, expected: tuple[str, str]) -> None:
    scans = [scan(w, spd, et_ml=et) for w, spd, et in course]
    result = run(scans, mode=Mode(mode))
    assert calls(result)[-1] == expected, result[-1].reason


def test_discordant_reason_cites_both_measures_and_the_configured_threshold() -> None:
    result = run([scan(4, 729.0, et_ml=7.8), scan(20, 918.0, et_ml=7.8)])
    reason = result[1].reason
    assert "SPD 918 mm² is +26 % vs its nadir 729 mm²" in reason and "ET volume 7.80 mL is +0 %" in reason
    assert "below the +20 % a 2D PD needs from the volumes" in reason and "discordance rule" in reason
    assert result[1].pd_date is None


def test_discordance_thresholds_come_from_the_criteria_file() -> None:
    lenient = dataclasses.replace(RANO2, discordance=dataclasses.replace(RANO2.discordance,
                                                                         min_volume_change_for_2d_pd=0.0))
    off = dataclasses.replace(RANO2, discordance=dataclasses.replace(RANO2.discordance, enabled=False))
    scans = [scan(4, 729.0, et_ml=7.8), scan(20, 918.0, et_ml=7.8)]
    assert calls(run(scans, criteria=lenient))[1] == ("PD", "PD")
    assert calls(run(scans, criteria=off))[1] == ("PD", "PD")


def test_a_discordant_scan_is_routed_to_a_reader_not_alerted_as_confirmed_pd() -> None:
    scans = [scan(4, 729.0, et_ml=7.8), scan(20, 918.0, et_ml=7.8), scan(26, 930.0, et_ml=7.9)]
    result = run(scans)
    alerts = [a for i in alert_inputs(result, scans, patient_key="P-0032")
              for a in evaluate_alerts(i, base_url=BASE_URL)]
    assert [(a.alert_type, a.severity) for a in alerts] == [(AlertType.DISCORDANT, Severity.WARNING)] * 2
    assert "not a PD call" in alerts[0].reason


@pytest.mark.parametrize("path", sorted(Path(CRITERIA_DIR).glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_criteria_file_loads_its_discordance_thresholds(path: Path) -> None:
    criteria = load_criteria(path.stem)
    rules = criteria.discordance
    assert rules.enabled and 0 < rules.min_volume_change_for_2d_pd < 0.40
    assert 0 < rules.min_spd_change_for_3d_pd < criteria.thresholds.pd_2d and rules.min_volume_ml > 0


# --- growth alerts -----------------------------------------------------------------------------------------


def test_a_shrinking_lesion_inside_the_psp_window_gets_no_critical_growth_alert() -> None:
    """The issue's course: 3.4 mL, down from 10.2 mL on the previous scan, inside the window."""
    scans = [scan(2, 0.0, et_ml=1.0), became(6, 879.0, 10.2), became(11, 300.0, 3.4)]
    result = run(scans)
    per_scan = [evaluate_alerts(i, base_url=BASE_URL) for i in alert_inputs(result, scans, patient_key="P-0032")]
    assert not [a for a in per_scan[2] if a.alert_type in {AlertType.RAPID_GROWTH, AlertType.GROWTH_PSP_WINDOW}]
    assert not [a for alerts in per_scan for a in alerts if a.severity is Severity.CRITICAL]
    growth = [a for a in per_scan[1] if a.alert_type is AlertType.GROWTH_PSP_WINDOW]
    assert growth and "possible pseudoprogression" in growth[0].reason


def test_growth_after_the_window_over_the_recent_interval_is_critical() -> None:
    scans = [scan(4, 1000.0, et_ml=2.0), scan(16, 1100.0, et_ml=2.2), scan(22, 1800.0, et_ml=5.0)]
    result = run(scans)
    alerts = evaluate_alerts(alert_inputs(result, scans, patient_key="P-0032")[2], base_url=BASE_URL)
    (rapid,) = (a for a in alerts if a.alert_type is AlertType.RAPID_GROWTH)
    assert rapid.severity is Severity.CRITICAL and "2.2 mL on the previous scan (+2.8 mL)" in rapid.reason
    assert "over 42 days" in rapid.reason


def test_a_new_lesion_inside_the_psp_window_is_not_a_critical_alert() -> None:
    scans = [scan(4, 0.0, et_ml=1.0), scan(8, 0.0, et_ml=4.0, new_measurable_lesion=True, emerging_spd_mm2=400.0)]
    alerts = evaluate_alerts(alert_inputs(run(scans), scans, patient_key="P-0032")[1], base_url=BASE_URL)
    (new,) = (a for a in alerts if a.alert_type is AlertType.NEW_LESION)
    assert new.severity is Severity.WARNING and "possible pseudoprogression" in new.reason
    later = [scan(4, 0.0, et_ml=1.0), scan(20, 0.0, et_ml=4.0, new_measurable_lesion=True, emerging_spd_mm2=400.0)]
    alerts = evaluate_alerts(alert_inputs(run(later), later, patient_key="P-0032")[1], base_url=BASE_URL)
    assert {(a.alert_type, a.severity) for a in alerts} >= {(AlertType.NEW_LESION, Severity.CRITICAL),
                                                             (AlertType.PD_CONFIRMED, Severity.CRITICAL)}
