"""The pseudoprogression prior (clinical-spec 8.6) and its scoring (AUC, Brier)."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from engine.criteria import load_criteria
from engine.response import ClinicalStatus, Mgmt, PatientContext, Timepoint
from engine.risk import PspEvidence, psp_evidence, psp_probability, score_probabilities

RANO2 = load_criteria("rano2")


@pytest.mark.parametrize(("mgmt", "expected"), [
    (Mgmt.UNMETHYLATED, 0.31), (Mgmt.METHYLATED, 0.61), (Mgmt.UNKNOWN, 0.43)],
    ids=["MGMT unmethylated -> 0.31", "MGMT methylated -> 0.61", "MGMT unknown -> pooled 0.43"])
def test_base_prior_by_mgmt(mgmt: Mgmt, expected: float) -> None:
    estimate = psp_probability(PspEvidence(mgmt=mgmt, weeks_since_rt=8), criteria=RANO2)
    assert estimate.probability == pytest.approx(expected, abs=0.005)
    assert estimate.low == pytest.approx(estimate.probability - 0.15)
    assert "not a trained classifier" in estimate.text


@pytest.mark.parametrize(("weeks", "multiplier"), [(10, 1.0), (20, 0.5), (40, 0.15)],
                         ids=["inside 12 weeks: odds x1", "12-26 weeks: odds x0.5", "after 26 weeks: odds x0.15"])
def test_time_since_rt_multiplies_the_odds(weeks: float, multiplier: float) -> None:
    estimate = psp_probability(PspEvidence(mgmt=Mgmt.UNKNOWN, weeks_since_rt=weeks), criteria=RANO2)
    odds = estimate.probability / (1 - estimate.probability)
    assert odds == pytest.approx(math.exp(-0.28) * multiplier)


def test_clinical_decline_lowers_the_probability() -> None:
    estimate = psp_probability(PspEvidence(mgmt=Mgmt.METHYLATED, weeks_since_rt=8,
                                           decline_or_steroid_increase=True), criteria=RANO2)
    odds = estimate.probability / (1 - estimate.probability)
    assert odds == pytest.approx(math.exp(0.45) * 0.20)


def test_combined_multipliers_are_clamped() -> None:
    estimate = psp_probability(PspEvidence(mgmt=Mgmt.UNKNOWN, weeks_since_rt=8, rcbv_high=False,
                                           adc_low=False, mrs_tumour=False), criteria=RANO2)
    assert estimate.combined_multiplier == 20.0  # 7.3 x 3.0 x 10.5 = 230, clamped
    assert estimate.high == 1.0


def test_evidence_comes_from_the_scan_and_the_one_before() -> None:
    context = PatientContext(patient_key="P", rt_end_date=date(2025, 1, 1), mgmt=Mgmt.METHYLATED)
    before = Timepoint(scan_date=date(2025, 2, 1), steroid_dose_mg=2.0, snfh_ml=30.0)
    now = Timepoint(scan_date=date(2025, 1, 1) + timedelta(weeks=10), steroid_dose_mg=4.0, snfh_ml=25.0,
                    clinical_status=ClinicalStatus.STABLE)
    evidence = psp_evidence(now, before, context=context)
    assert evidence.weeks_since_rt == pytest.approx(10.0)
    assert evidence.decline_or_steroid_increase is True and evidence.flair_decreased is True


def test_auc_and_brier_on_known_pairs() -> None:
    scores = score_probabilities([(0.9, True), (0.8, True), (0.3, False), (0.8, False)])
    assert scores.auc == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert scores.brier == pytest.approx((0.01 + 0.04 + 0.09 + 0.64) / 4)


def test_auc_is_undefined_with_one_class() -> None:
    scores = score_probabilities([(0.2, False), (0.4, False)])
    assert scores.auc is None and scores.brier == pytest.approx((0.04 + 0.16) / 2)


def test_probabilities_outside_0_1_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_probabilities([(1.2, True)])
