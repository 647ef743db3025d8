"""Pseudoprogression probability at a preliminary PD (clinical-spec 8.6), and how to score it.

This is a **literature-informed prior** (naive Bayes over published odds ratios and likelihood
ratios), not a trained classifier: a base logit by MGMT status, an odds multiplier for the time
since the end of radiotherapy, evidence multipliers, the product of multipliers clamped, and a
band. It never decides anything: the confirmation scan or histology does (8.5).

:func:`score_probabilities` gives the AUC and Brier score of such probabilities against known
outcomes (e.g. a synthetic cohort whose truth is known; say so when quoting them).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.criteria import Criteria
from engine.response.inputs import ClinicalStatus, Mgmt, PatientContext, ResponseCall, Timepoint
from engine.types import Response

MODEL_LABEL = "literature-informed prior (naive Bayes, clinical-spec 8.6), not a trained classifier"


@dataclass(frozen=True, slots=True, kw_only=True)
class PspEvidence:
    """What is known at the preliminary-PD scan. ``None`` = not assessed (multiplier 1)."""

    mgmt: Mgmt = Mgmt.UNKNOWN
    weeks_since_rt: float | None = None
    decline_or_steroid_increase: bool | None = None
    subependymal_enhancement: bool | None = None
    rcbv_high: bool | None = None
    adc_low: bool | None = None
    mrs_tumour: bool | None = None
    flair_decreased: bool | None = None  # FLAIR (SNFH) volume fell while enhancement rose


@dataclass(frozen=True, slots=True, kw_only=True)
class PspEstimate:
    probability: float
    low: float
    high: float
    base_probability: float
    multipliers: tuple[tuple[str, float], ...]
    combined_multiplier: float  # after clamping
    evidence: PspEvidence
    model: str
    criteria: str

    @property
    def text(self) -> str:
        parts = ", ".join(f"{name} x{value:g}" for name, value in self.multipliers) or "no adjustments"
        return (f"P(pseudoprogression) {self.probability:.2f} (band {self.low:.2f}-{self.high:.2f}; base "
                f"{self.base_probability:.2f} for MGMT {self.evidence.mgmt.value}; {parts}); a {self.model} "
                f"[{self.criteria}]")


def psp_probability(evidence: PspEvidence, *, criteria: Criteria) -> PspEstimate:
    """Probability that a preliminary PD is pseudoprogression, with its inputs and band."""
    prior = criteria.psp_prior
    if evidence.mgmt is Mgmt.METHYLATED:
        logit = prior.logit_intercept + prior.logit_mgmt_methylated
    elif evidence.mgmt is Mgmt.UNMETHYLATED:
        logit = prior.logit_intercept
    else:
        logit = prior.logit_mgmt_unknown
    multipliers: list[tuple[str, float]] = []
    weeks = evidence.weeks_since_rt
    if weeks is not None:
        if weeks > prior.late_weeks:
            multipliers.append((f"{weeks:.0f} weeks after RT (> {prior.late_weeks:g})", prior.time_late_multiplier))
        elif weeks > prior.window_weeks:
            multipliers.append((f"{weeks:.0f} weeks after RT (> {prior.window_weeks:g})", prior.time_mid_multiplier))
    flags = (
        ("clinical decline or steroid increase", evidence.decline_or_steroid_increase,
         prior.decline_or_steroid_multiplier, None),
        ("subependymal enhancement", evidence.subependymal_enhancement,
         prior.subependymal_present_multiplier, prior.subependymal_absent_multiplier),
        ("rCBV high", evidence.rcbv_high, prior.rcbv_high_multiplier, prior.rcbv_low_multiplier),
        ("ADC low", evidence.adc_low, prior.adc_low_multiplier, prior.adc_high_multiplier),
        ("MRS tumour-like", evidence.mrs_tumour, prior.mrs_tumour_multiplier, prior.mrs_not_tumour_multiplier),
        ("FLAIR decreased", evidence.flair_decreased, prior.flair_decrease_multiplier, None),
    )
    for name, present, if_present, if_absent in flags:
        if present is True:
            multipliers.append((name, if_present))
        elif present is False and if_absent is not None:
            multipliers.append((f"no {name}", if_absent))
    product = math.prod(value for _, value in multipliers)
    combined = min(max(product, prior.clamp_low), prior.clamp_high)
    odds = math.exp(logit) * combined
    probability = odds / (1.0 + odds)
    return PspEstimate(
        probability=probability,
        low=max(0.0, probability - prior.band),
        high=min(1.0, probability + prior.band),
        base_probability=1.0 / (1.0 + math.exp(-logit)),
        multipliers=tuple(multipliers),
        combined_multiplier=combined,
        evidence=evidence,
        model=MODEL_LABEL,
        criteria=criteria.label,
    )


@dataclass(frozen=True, slots=True)
class ProbabilityScores:
    n: int
    n_positive: int
    auc: float | None  # None when only one class is present (AUC undefined)
    brier: float | None  # None when n == 0


def score_probabilities(pairs: Iterable[tuple[float, bool]]) -> ProbabilityScores:
    """AUC (Mann-Whitney, ties count 1/2) and Brier score of (probability, truth) pairs."""
    items = [(float(p), bool(t)) for p, t in pairs]
    for p, _ in items:
        if not 0.0 <= p <= 1.0:
            msg = f"Probabilities must lie in [0, 1], got {p}"
            raise ValueError(msg)
    n = len(items)
    positives = [p for p, t in items if t]
    negatives = [p for p, t in items if not t]
    brier = sum((p - (1.0 if t else 0.0)) ** 2 for p, t in items) / n if n else None
    if not positives or not negatives:
        return ProbabilityScores(n=n, n_positive=len(positives), auc=None, brier=brier)
    wins = 0.0
    for p in positives:
        for q in negatives:
            wins += 1.0 if p > q else 0.5 if p == q else 0.0
    return ProbabilityScores(
        n=n, n_positive=len(positives), auc=wins / (len(positives) * len(negatives)), brier=brier
    )


def psp_evidence(
    current: Timepoint, previous: Timepoint | None, *, context: PatientContext
) -> PspEvidence:
    """The prior's inputs at a preliminary-PD scan, from the scan and the one before it.

    A steroid increase is a dose above the previous scan's; "FLAIR decreased" is an SNFH volume
    below the previous scan's (enhancement having risen, since this is a preliminary PD).
    """
    weeks = (current.scan_date - context.rt_end_date).days / 7 if context.rt_end_date else None
    decline: bool | None = None
    if current.clinical_status is not None:
        decline = current.clinical_status is ClinicalStatus.WORSE
    prev_dose = previous.steroid_dose_mg if previous else None
    if current.steroid_dose_mg is not None and prev_dose is not None:
        decline = bool(decline) or current.steroid_dose_mg > prev_dose
    flair: bool | None = None
    if previous is not None and current.snfh_ml is not None and previous.snfh_ml is not None:
        flair = current.snfh_ml < previous.snfh_ml
    return PspEvidence(
        mgmt=context.mgmt,
        weeks_since_rt=weeks,
        decline_or_steroid_increase=decline,
        subependymal_enhancement=current.subependymal_enhancement,
        rcbv_high=current.rcbv_high,
        adc_low=current.adc_low,
        mrs_tumour=current.mrs_tumour,
        flair_decreased=flair or None,
    )


def psp_at_preliminary_pds(
    calls: Sequence[ResponseCall], timepoints: Sequence[Timepoint], *, context: PatientContext, criteria: Criteria
) -> dict[str, PspEstimate]:
    """P(pseudoprogression) at every scan called PRELIM_PD (8.5: "raise ALERT_PPD with P(PsP) from
    8.6"), whatever later scans made of it, keyed by study UID. ``calls`` and ``timepoints`` are in
    the same order (as ``assess_patient`` returns them); the previous scan is the one before by date."""
    if len(calls) != len(timepoints):
        msg = f"Arguments 'calls' and 'timepoints' must have the same length, got {len(calls)} and {len(timepoints)}"
        raise ValueError(msg)
    by_date = sorted(timepoints, key=lambda tp: tp.scan_date)
    out: dict[str, PspEstimate] = {}
    for call, tp in zip(calls, timepoints, strict=True):
        if call.category is not Response.PRELIM_PD:
            continue
        k = by_date.index(tp)
        evidence = psp_evidence(tp, by_date[k - 1] if k else None, context=context)
        out[call.study_uid] = psp_probability(evidence, criteria=criteria)
    return out
