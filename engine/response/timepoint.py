"""Overall timepoint response (clinical-spec 8.4): rows applied in order, the first match wins.

The result is a :class:`Finding`, not yet a call: a candidate PD becomes PRELIM_PD, PD or an
indeterminate in-window scan only in the temporal state machine (8.5, ``temporal.py``), and a
first CR/PR is confirmed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.criteria import Criteria
from engine.response.inputs import ClinicalStatus
from engine.response.target import TargetCategory, TargetResult
from engine.response.wording import format_dose


class FindingKind(StrEnum):
    PD_HISTOLOGY = "PD_HISTOLOGY"  # row 1: confirmed PD
    CANDIDATE_PD = "CANDIDATE_PD"  # rows 2 and 4: to the temporal logic
    CLINICAL_PD = "CLINICAL_PD"  # row 3
    STEROID_WATCH = "STEROID_WATCH"  # row 5 (SD_PENDING_STEROID in the spec)
    CR = "CR"  # row 6 (preliminary until confirmed)
    PR = "PR"  # row 7 (preliminary until confirmed)
    SD = "SD"  # rows 8 and 9


@dataclass(frozen=True, slots=True, kw_only=True)
class SteroidStatus:
    """Dexamethasone dose now vs the baseline scan and the previous scan (mg/day, None = unknown)."""

    dose_mg: float | None
    baseline_mg: float | None
    previous_mg: float | None
    physiological_mg: float

    @property
    def known(self) -> bool:
        return self.dose_mg is not None and self.baseline_mg is not None

    @property
    def above_baseline(self) -> bool:
        return self.known and self.dose_mg > max(self.baseline_mg, self.physiological_mg)  # type: ignore[operator]

    @property
    def newly_raised(self) -> bool:
        """Above baseline and higher than at the previous scan (or the previous dose is unknown)."""
        if not self.above_baseline:
            return False
        return self.previous_mg is None or self.dose_mg > self.previous_mg  # type: ignore[operator]

    @property
    def physiological_or_none(self) -> bool:
        return self.dose_mg is None or self.dose_mg <= self.physiological_mg

    @property
    def text(self) -> str:
        return f"dexamethasone {format_dose(self.dose_mg)} (baseline {format_dose(self.baseline_mg)})"


@dataclass(frozen=True, slots=True, kw_only=True)
class TimepointEvidence:
    target: TargetResult
    steroids: SteroidStatus
    new_measurable_lesion: bool | None = None
    nonmeasurable_progression: bool | None = None
    clinical_status: ClinicalStatus | None = None
    histology_recurrent: bool = False
    emerging_text: str = ""  # non-empty: names the new / newly measurable lesions (replaces the generic words)
    nonce_increase_text: str = ""  # non-empty: a significant T2/FLAIR increase that counts for PD
    decline_counts: bool = True  # False inside the PsP window under RANO 2010


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    kind: FindingKind
    row: int
    text: str
    with_decline: bool = False


def classify_timepoint(evidence: TimepointEvidence, *, criteria: Criteria) -> Finding:
    """Apply the rows of clinical-spec 8.4 in order; the first match wins."""
    target = evidence.target
    steroids = evidence.steroids
    decline = evidence.clinical_status is ClinicalStatus.WORSE and evidence.decline_counts
    if evidence.histology_recurrent:
        return Finding(kind=FindingKind.PD_HISTOLOGY, row=1, text="histology shows recurrent tumour")
    reasons = []
    if evidence.emerging_text:
        reasons.append(evidence.emerging_text)
    elif evidence.new_measurable_lesion:
        reasons.append("a new measurable enhancing lesion")
    if evidence.nonmeasurable_progression and not evidence.emerging_text:
        reasons.append("clear progression of non-measurable disease")
    if target.category is TargetCategory.PD:
        reasons.append(target.text)
    if reasons:
        text = "; ".join(reasons)
        if decline:
            text += ", with tumour-related clinical decline"
        return Finding(kind=FindingKind.CANDIDATE_PD, row=2, text=text, with_decline=decline)
    if decline:
        return Finding(
            kind=FindingKind.CLINICAL_PD, row=3,
            text=f"tumour-related clinical decline ({target.text})", with_decline=True,
        )
    if evidence.nonce_increase_text:
        return Finding(kind=FindingKind.CANDIDATE_PD, row=4, text=evidence.nonce_increase_text)
    better = target.category in {TargetCategory.CR, TargetCategory.PR}
    if steroids.newly_raised:
        return Finding(
            kind=FindingKind.STEROID_WATCH, row=5,
            text=f"imaging stable or better ({target.text}) but steroids were raised to {steroids.text}",
        )
    clinically_ok = evidence.clinical_status is not ClinicalStatus.WORSE
    unrecorded = "" if steroids.dose_mg is not None else " (steroid dose not recorded)"
    if target.category is TargetCategory.CR and steroids.physiological_or_none and clinically_ok:
        return Finding(kind=FindingKind.CR, row=6, text=f"{target.text}, no new lesion{unrecorded}")
    if better and not steroids.above_baseline and clinically_ok:
        return Finding(kind=FindingKind.PR, row=7, text=f"{target.text}, no new lesion{unrecorded}")
    if better and steroids.above_baseline:
        return Finding(
            kind=FindingKind.SD, row=8,
            text=f"{target.text}, but {steroids.text} is above baseline, so not a response",
        )
    return Finding(kind=FindingKind.SD, row=9, text=target.text)
