"""Multi-visit scenarios traced through the temporal state machine (clinical-spec 8.5)."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest

from engine.criteria import ConfirmRule, Mode, load_criteria
from engine.errors import AssessmentError
from engine.response import ClinicalStatus, PatientContext, ResponseCall, Timepoint, assess_patient
from engine.types import Response as R

RT_END = date(2025, 1, 6)
RANO2 = load_criteria("rano2")


def scan(weeks: float, spd: float | None, **kwargs: object) -> Timepoint:
    kwargs.setdefault("steroid_dose_mg", 2.0)
    return Timepoint(scan_date=RT_END + timedelta(days=round(weeks * 7)), spd_mm2=spd, **kwargs)  # type: ignore[arg-type]


def run(scans: list[Timepoint], *, criteria=RANO2, rt_end: date | None = RT_END, mode=Mode.TWO_D,
        **ctx: object) -> list[ResponseCall]:
    context = PatientContext(patient_key="P-0001", rt_end_date=rt_end, **ctx)  # type: ignore[arg-type]
    return list(assess_patient(scans, context, criteria=criteria, mode=mode))


def calls(result: list[ResponseCall]) -> list[tuple[str, str]]:
    return [(c.category.value, c.final_category.value) for c in result]


def test_pseudoprogression_in_the_12_week_window() -> None:
    result = run([scan(-2, 2000), scan(4, 1000), scan(10, 1400), scan(16, 1050), scan(24, 1000)])
    assert calls(result) == [("PRE_BASELINE", "PRE_BASELINE"), ("BASELINE", "BASELINE"),
                             ("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD"),  # issue 32: the resolving scan is SD
                             ("SD", "SD")]
    assert "+40 % over the nadir 1,000 mm²" in result[2].reason
    assert "RANO 2.0, criteria v2" in result[2].reason
    assert result[2].pd_date is None


def test_confirmed_pd_is_dated_back_to_the_preliminary_scan() -> None:
    result = run([scan(4, 1000), scan(10, 1400), scan(15, 1800)])
    assert calls(result) == [("BASELINE", "BASELINE"), ("PRELIM_PD", "PD"), ("PD", "PD")]
    ppd_date = result[1].scan_date
    assert result[1].pd_date == ppd_date and result[2].pd_date == ppd_date
    assert "+29 % over the preliminary-PD scan's 1,400 mm²" in result[2].reason


def test_pd_persists_rule_confirms_without_a_further_25_percent() -> None:
    persists = dataclasses.replace(RANO2, timing=dataclasses.replace(RANO2.timing,
                                                                     confirm_rule=ConfirmRule.PD_PERSISTS))
    scans = [scan(4, 1000), scan(10, 1400), scan(15, 1500)]
    assert calls(run(scans, criteria=persists))[2] == ("PD", "PD")
    assert calls(run(scans))[2] == ("PRELIM_PD", "PRELIM_PD")  # +7 %: equivocal under PPD_PLUS_25


def test_equivocal_scan_keeps_the_preliminary_pd_open_then_confirms() -> None:
    result = run([scan(4, 1000), scan(10, 1400), scan(15, 1500), scan(20, 1900)])
    assert calls(result)[1:] == [("PRELIM_PD", "PD"), ("PRELIM_PD", "PD"), ("PD", "PD")]
    assert {c.pd_date for c in result[1:]} == {result[1].scan_date}


def test_confirmation_scan_earlier_than_4_weeks_stays_preliminary() -> None:
    result = run([scan(4, 1000), scan(10, 1400), scan(12, 1000)])
    assert calls(result)[2] == ("PRELIM_PD", "PRELIM_PD")
    assert "only 14 days after the preliminary PD" in result[2].reason


def test_clinical_decline_at_the_follow_up_confirms_pd() -> None:
    result = run([scan(4, 1000), scan(10, 1400), scan(15, 1300, clinical_status=ClinicalStatus.WORSE)])
    assert calls(result)[1:] == [("PRELIM_PD", "PD"), ("PD", "PD")]
    assert result[2].pd_date == result[1].scan_date


def test_pd_after_the_window_on_standard_therapy_is_called_at_once() -> None:
    result = run([scan(4, 1000), scan(20, 1300)])
    assert calls(result)[1] == ("PD", "PD")
    assert result[1].pd_date == result[1].scan_date
    assert "past the 12-week window" in result[1].reason


def test_high_psp_therapy_needs_confirmation_after_the_window() -> None:
    result = run([scan(4, 1000), scan(20, 1300)], high_psp_therapy=True)
    assert calls(result)[1] == ("PRELIM_PD", "PRELIM_PD")


def test_mrano_confirms_every_pd() -> None:
    result = run([scan(4, 1000), scan(20, 1300), scan(26, 1700)], criteria=load_criteria("mrano"))
    assert calls(result)[1:] == [("PRELIM_PD", "PD"), ("PD", "PD")]


def test_scans_after_pd_need_a_new_baseline() -> None:
    result = run([scan(4, 1000), scan(20, 1300), scan(26, 900)])
    assert calls(result)[2] == ("NE", "NE")
    assert "new baseline" in result[2].reason


def test_unconfirmed_pr_becomes_sd() -> None:
    result = run([scan(4, 1000), scan(16, 450), scan(22, 540)])  # -46 % vs baseline, +20 % over nadir
    assert calls(result)[1:] == [("PR", "SD"), ("SD", "SD")]
    assert "not confirmed" in result[1].final_reason


def test_pr_confirmed_four_weeks_later_keeps_its_label() -> None:
    result = run([scan(4, 1000), scan(16, 450), scan(21, 400), scan(30, 420)])
    assert calls(result)[1:] == [("PR", "PR"), ("PR", "PR"), ("PR", "PR")]
    assert "confirmed" in result[1].final_reason


def test_cr_confirmed_by_a_later_pr_is_final_pr() -> None:
    result = run([scan(4, 1000), scan(16, 0, steroid_dose_mg=0.0), scan(22, 80)])  # regrowth < 10x10 mm
    assert calls(result)[1:] == [("CR", "PR"), ("PR", "PR")]


def test_regrowth_after_cr_is_new_disease() -> None:
    result = run([scan(4, 1000), scan(16, 0, steroid_dose_mg=0.0), scan(22, 300)])
    assert calls(result)[1:] == [("CR", "SD"), ("PD", "PD")]
    assert "after the nadir 0" in result[2].reason


def test_last_response_without_a_later_scan_stays_as_called() -> None:
    result = run([scan(4, 1000), scan(16, 450)])
    assert calls(result)[1] == ("PR", "PR")
    assert "to be confirmed" in result[1].reason


def test_pd_is_measured_from_the_nadir_not_the_baseline() -> None:
    result = run([scan(4, 1000), scan(16, 400), scan(22, 420), scan(30, 520)])
    assert calls(result)[3] == ("PD", "PD")
    assert "+30 % over the nadir 400 mm²" in result[3].reason


def test_steroid_watch_resolves_to_sd_when_the_dose_returns_to_baseline() -> None:
    result = run([scan(4, 1000), scan(16, 1050, steroid_dose_mg=8.0), scan(22, 1000, steroid_dose_mg=2.0)])
    assert calls(result)[1:] == [("STEROID_WATCH", "SD"), ("SD", "SD")]


def test_steroid_watch_continues_while_the_dose_stays_up() -> None:
    result = run([scan(4, 1000), scan(16, 1050, steroid_dose_mg=8.0), scan(22, 1000, steroid_dose_mg=8.0)])
    assert calls(result)[1:] == [("STEROID_WATCH", "STEROID_WATCH"), ("STEROID_WATCH", "STEROID_WATCH")]


def test_steroid_watch_becomes_pd_dated_to_the_first_increase_on_decline() -> None:
    result = run([scan(4, 1000), scan(16, 1050, steroid_dose_mg=8.0), scan(20, 1080, steroid_dose_mg=8.0),
                  scan(24, 1100, steroid_dose_mg=12.0, clinical_status=ClinicalStatus.WORSE)])
    assert calls(result)[1:] == [("STEROID_WATCH", "PD"), ("STEROID_WATCH", "PD"), ("PD", "PD")]
    assert {c.pd_date for c in result[1:]} == {result[1].scan_date}


def test_rt_end_unknown_is_said_not_guessed() -> None:
    result = run([scan(4, 1000), scan(10, 1400)], rt_end=None)
    assert calls(result) == [("NE", "NE"), ("NE", "NE")]
    assert "end of radiotherapy is not recorded" in result[0].reason


def test_rano2010_takes_the_first_post_operative_scan_as_baseline() -> None:
    rano2010 = load_criteria("rano2010")
    result = run([scan(-10, 3000), scan(-8, 2000), scan(4, 1000)], criteria=rano2010,
                 surgery_date=RT_END - timedelta(weeks=9))
    assert calls(result) == [("PRE_BASELINE", "PRE_BASELINE"), ("BASELINE", "BASELINE"), ("PR", "PR")]
    assert "first post-operative scan" in result[1].reason


def test_rano2010_in_window_growth_is_indeterminate_without_out_of_field_enhancement() -> None:
    rano2010 = load_criteria("rano2010")
    result = run([scan(-8, 1000), scan(8, 1400), scan(14, 1000)], criteria=rano2010)
    assert calls(result)[1:] == [("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD")]  # issue 32: resolving scan SD
    assert "outside the RT field" in result[1].reason


def test_rano2010_new_enhancement_outside_the_rt_field_is_pd_in_the_window() -> None:
    rano2010 = load_criteria("rano2010")
    result = run([scan(-8, 1000), scan(8, 1100, new_measurable_lesion=True, new_lesion_outside_field=True)],
                 criteria=rano2010)
    assert calls(result)[1] == ("PD", "PD")


def test_rano2010_with_rt_end_unknown_cannot_place_the_window() -> None:
    result = run([scan(-8, 1000), scan(8, 1400)], criteria=load_criteria("rano2010"), rt_end=None)
    assert calls(result) == [("BASELINE", "BASELINE"), ("NE", "NE")]
    assert "12-week pseudoprogression window" in result[1].reason


def test_volumetric_mode_uses_the_3d_thresholds() -> None:
    scans = [Timepoint(scan_date=RT_END + timedelta(weeks=w), et_ml=v, steroid_dose_mg=2.0)
             for w, v in ((4, 10.0), (20, 13.0), (26, 14.5))]
    assert calls(run(scans, mode=Mode.THREE_D))[1:] == [("SD", "SD"), ("PD", "PD")]


def test_missing_measurement_is_ne_and_skipped() -> None:
    result = run([scan(4, 1000), scan(10, None), scan(16, 1050)])
    assert calls(result)[1:] == [("NE", "NE"), ("SD", "SD")]


def test_calls_come_back_in_the_order_given() -> None:
    scans = [scan(16, 1050), scan(4, 1000), scan(-2, 900)]
    assert [c.category for c in run(scans)] == [R.SD, R.BASELINE, R.PRE_BASELINE]


def test_two_scans_on_one_date_are_refused() -> None:
    with pytest.raises(AssessmentError, match="Two scans on the same date"):
        run([scan(4, 1000), scan(4, 1100)])


def test_new_lesion_in_the_window_that_fades_is_pseudoprogression() -> None:
    # gross total resection: no measurable disease at baseline; a new enhancing lesion at 8 weeks fades
    result = run([scan(4, 0), scan(8, 0, new_measurable_lesion=True), scan(14, 0, new_measurable_lesion=False)])
    assert calls(result)[1:] == [("PRELIM_PD", "PSEUDOPROGRESSION"), ("SD", "SD")]  # issue 32: resolving scan SD


def test_new_lesion_that_persists_and_grows_confirms_pd() -> None:
    result = run([scan(4, 0, et_ml=0.0), scan(8, 0, et_ml=2.0, new_measurable_lesion=True),
                  scan(14, 0, et_ml=2.1, new_measurable_lesion=True),  # same lesion, not growing: equivocal
                  scan(19, 0, et_ml=3.5, new_measurable_lesion=True)])
    assert calls(result)[1:] == [("PRELIM_PD", "PD"), ("PRELIM_PD", "PD"), ("PD", "PD")]


def test_decline_with_imaging_pd_inside_the_window_is_still_preliminary() -> None:
    result = run([scan(4, 1000), scan(9, 1400, clinical_status=ClinicalStatus.WORSE)])
    assert calls(result)[1] == ("PRELIM_PD", "PRELIM_PD")


def test_non_target_disease_growing_in_volume_confirms_pd() -> None:
    result = run([scan(4, 0, et_ml=1.0), scan(8, 0, et_ml=3.0, nonmeasurable_progression=True),
                  scan(14, 0, et_ml=3.6, nonmeasurable_progression=True),
                  scan(20, 0, et_ml=7.0, nonmeasurable_progression=True)])
    assert calls(result)[1:] == [("PRELIM_PD", "PD"), ("PRELIM_PD", "PD"), ("PD", "PD")]
    assert "+133 % over the preliminary-PD scan's 3.00 mL" in result[3].reason


@pytest.mark.slow
def test_generator_scenarios_are_recovered_from_ground_truth_labels() -> None:
    """End to end on the synthetic generator's ground-truth labels (no segmentation, no registration:
    the truth of every visit is on one template grid): one patient per scenario."""
    import numpy as np

    from engine.events import ClinicalEvent, EventType, parse_clinical_events, patient_context, with_clinical_values
    from engine.measurement import followup_findings, measure_study
    from engine.modelling.synth.anatomy import build_head
    from engine.modelling.synth.cohort import SCENARIO_ORDER, clinical_events, patient_model
    from engine.modelling.synth.tumour import render
    from engine.types import Volume

    head = build_head(spacing_mm=2.0)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    finals = {}
    for index, scenario in enumerate(SCENARIO_ORDER):
        model = patient_model(seed=7, patient_index=index, scenario=scenario, n_visits=8, head=head)
        plan = model.plan
        text = "patient_id,event_date,event,value\n" + "\n".join(",".join(r) for r in clinical_events(plan))
        events, errors = parse_clinical_events(text)
        assert not errors and all(isinstance(e, ClinicalEvent) and e.event in EventType for e in events)
        timepoints, baseline, previous = [], None, None
        for visit in plan.visits:
            m = measure_study(Volume(render(model.field, visit.state).labels, affine), criteria=RANO2.measurability,
                              target_indices=None if baseline is None else ())
            spd, new, non_measurable, emerging = m.spd_mm2, False, False, None
            if baseline is not None:
                found = followup_findings(baseline=baseline, current=m, criteria=RANO2.measurability, spacing_mm=2.0)
                spd, new, non_measurable = found.spd_mm2, found.new_measurable_lesion, found.nonmeasurable_progression
                emerging = found.emerging_spd_mm2  # issue 32: lesions outside the targets enter the assessment
            elif visit.study_date > plan.rt_end_date:
                baseline = m
            tp = Timepoint(scan_date=visit.study_date, study_uid=str(visit.visit_index), spd_mm2=spd,
                           et_ml=m.volumes.et_ml, snfh_ml=m.volumes.snfh_ml, new_measurable_lesion=new,
                           became_measurable=non_measurable, emerging_spd_mm2=emerging)
            timepoints.append(with_clinical_values(tp, events, plan.patient_id, previous_scan_date=previous))
            previous = visit.study_date
        result = assess_patient(timepoints, patient_context(events, plan.patient_id), criteria=RANO2,
                                mode=Mode.TWO_D)
        finals[scenario.value] = {c.final_category for c in result}
    assert not finals["stable"] & {R.PD, R.PRELIM_PD, R.PSEUDOPROGRESSION}
    assert R.PD in finals["progression"] and R.PD in finals["late_recurrence"]
    assert R.PSEUDOPROGRESSION in finals["pseudoprogression"] and R.PD not in finals["pseudoprogression"]
    assert finals["partial_response"] & {R.PR, R.CR} and R.PD not in finals["partial_response"]
