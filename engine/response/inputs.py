"""What the response rules read (one timepoint, one patient) and what they return (a call)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from engine.types import Response


class ClinicalStatus(StrEnum):
    """Clinical status at a visit. ``worse`` means tumour-related decline not explained by
    medication, comorbidity or seizures (the clinician entering it vouches for that)."""

    IMPROVED = "improved"
    STABLE = "stable"
    WORSE = "worse"


class Mgmt(StrEnum):
    METHYLATED = "methylated"
    UNMETHYLATED = "unmethylated"
    UNKNOWN = "unknown"


class Idh(StrEnum):
    WILDTYPE = "wildtype"
    MUTANT = "mutant"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timepoint:
    """One scan of one patient, with what is known on its date. ``None`` means unknown.

    ``spd_mm2`` is the sum of bidimensional products over the target lesions (2D mode);
    ``et_ml`` the enhancing-tumour volume (3D mode). Booleans are judgements made on this scan.
    ``emerging_spd_mm2`` sums the bidimensional products of the measurable lesions that are not
    continuations of a baseline target (new lesions, and lesions non-measurable at baseline that
    ``became_measurable``): the disease the target SPD cannot see (issue 32).
    """

    scan_date: date
    study_uid: str = ""
    spd_mm2: float | None = None
    et_ml: float | None = None
    netc_ml: float | None = None
    snfh_ml: float | None = None
    new_measurable_lesion: bool | None = None
    became_measurable: bool | None = None  # a lesion non-measurable at baseline is measurable now
    emerging_spd_mm2: float | None = None  # products of measurable lesions outside the baseline targets
    new_lesion_outside_field: bool | None = None
    nonmeasurable_progression: bool | None = None
    steroid_dose_mg: float | None = None
    clinical_status: ClinicalStatus | None = None
    histology_recurrent: bool = False
    # optional advanced-imaging evidence for the pseudoprogression prior (clinical-spec 8.6)
    subependymal_enhancement: bool | None = None
    rcbv_high: bool | None = None
    adc_low: bool | None = None
    mrs_tumour: bool | None = None

    def __post_init__(self) -> None:
        for name in ("spd_mm2", "emerging_spd_mm2", "et_ml", "netc_ml", "snfh_ml", "steroid_dose_mg"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                msg = f"Argument '{name}' must be >= 0 or None, got {value!r}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class PatientContext:
    """What the response rules need to know about a patient beyond the scans."""

    patient_key: str
    rt_end_date: date | None = None
    surgery_date: date | None = None
    mgmt: Mgmt = Mgmt.UNKNOWN
    idh: Idh = Idh.UNKNOWN
    high_psp_therapy: bool = False  # e.g. immunotherapy: confirmation required after the window


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCall:
    """The response at one timepoint: as called on its date, and final once later scans are known.

    ``burden`` is the SPD (mm²) in 2D mode or the ET volume (mL) in 3D mode; ``pd_date`` is set on
    rows whose final response is PD (back-dated to the preliminary-PD scan or the first steroid
    increase where the rules say so).
    """

    scan_date: date
    study_uid: str
    category: Response
    final_category: Response
    reason: str
    final_reason: str
    criteria: str
    pd_date: date | None = None
    burden: float | None = None
    baseline_burden: float | None = None
    baseline_date: date | None = None
    nadir_burden: float | None = None
    nadir_date: date | None = None
    change_vs_baseline: float | None = None
    change_vs_nadir: float | None = None
    weeks_post_rt: float | None = None

    @property
    def full_reason(self) -> str:
        """The call's reason, followed by why the final label differs when it does."""
        if self.final_reason and self.final_reason != self.reason:
            return f"{self.reason} Later: {self.final_reason}"
        return self.reason
