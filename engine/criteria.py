"""Response-criteria profiles: versioned TOML files loaded into frozen dataclasses.

Every threshold that a response call depends on lives in ``config/criteria/<profile>.toml``
(clinical-spec section 8.1) with a ``version``; every call quotes ``"<name>, criteria v<N>"``.
A key missing from a file, an unknown key or a value of the wrong type is a :class:`ConfigError`:
a profile is valid once :func:`load_criteria` returns it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from engine.config_loading import build_config
from engine.errors import ConfigError

CRITERIA_DIR = Path(__file__).resolve().parent.parent / "config" / "criteria"


class Profile(StrEnum):
    RANO2 = "rano2"
    MRANO = "mrano"
    RANO2010 = "rano2010"


class Mode(StrEnum):
    """2D: sum of bidimensional products (SPD); 3D: enhancing volume (sum of volumes)."""

    TWO_D = "2d"
    THREE_D = "3d"


class BaselineRule(StrEnum):
    FIRST_POST_RT = "first_post_rt"
    FIRST_POST_OP = "first_post_op"


class ConfirmRule(StrEnum):
    PPD_PLUS_25 = "PPD_PLUS_25"  # a further increase over the preliminary-PD scan
    PD_PERSISTS = "PD_PERSISTS"  # still >= the PD threshold over nadir and not smaller than the PPD scan


class InWindowRule(StrEnum):
    CONFIRM = "confirm"  # preliminary PD, confirmed or refuted by the next scan
    OUTSIDE_FIELD_OR_HISTOLOGY = "outside_field_or_histology"  # RANO 2010


class NonCeRule(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    IDH_MUTANT = "idh_mutant"


@dataclass(frozen=True, slots=True)
class BaselineCriteria:
    rule: BaselineRule


@dataclass(frozen=True, slots=True)
class MeasurabilityCriteria:
    meas_min_mm: float
    thick_slice_mm: float
    meas_min_slices: int
    n_target_max: int
    min_component_ml: float
    inside_fraction: float
    perpendicular_tolerance_deg: float
    new_lesion_iou: float
    match_gap_mm: float
    opening_mm: float

    def min_diameter_mm(self, slice_thickness_mm: float) -> float:
        """10 mm, or 2 x slice thickness when slices are thicker than 5 mm (clinical-spec 5.2 step 5)."""
        if slice_thickness_mm > self.thick_slice_mm:
            return max(self.meas_min_mm, 2.0 * slice_thickness_mm)
        return self.meas_min_mm


@dataclass(frozen=True, slots=True)
class Thresholds:
    pr_2d: float
    pd_2d: float
    mr_nonce: float
    regrowth_min_mm2: float
    regrowth_min_ml: float
    pd_min_rise_mm2: float
    pd_min_rise_ml: float
    pr_3d: float | None = None  # RANO 2010 defines no volumetric thresholds
    pd_3d: float | None = None


@dataclass(frozen=True, slots=True)
class TimingCriteria:
    response_confirm_weeks: float
    psp_window_weeks: float
    confirm_interval_weeks: float
    confirm_rule: ConfirmRule
    confirm_increase: float
    confirm_required_after_window: bool
    in_window_rule: InWindowRule
    min_scan_interval_days: int


@dataclass(frozen=True, slots=True)
class NonEnhancingCriteria:
    nonce_for_pd: NonCeRule
    nonce_pd_increase: float
    nonce_pd_min_ml: float


@dataclass(frozen=True, slots=True)
class DiscordanceCriteria:
    """2D and volumetric assessment side by side: when one shows a PD the other does not support,
    the scan is DISCORDANT (routed to a reader) instead of a PD call [H]."""

    enabled: bool
    min_volume_change_for_2d_pd: float  # ET volume rise over its nadir a 2D PD needs to be supported
    min_spd_change_for_3d_pd: float  # SPD rise over its nadir a volumetric PD needs to be supported
    min_volume_ml: float  # ET volume nadir below which the volumes are too noisy to judge


@dataclass(frozen=True, slots=True)
class SteroidCriteria:
    physiological_mg: float
    exclude_psp_from_nadir: bool


@dataclass(frozen=True, slots=True)
class PspPriorCriteria:
    logit_intercept: float
    logit_mgmt_methylated: float
    logit_mgmt_unknown: float
    window_weeks: float
    late_weeks: float
    time_mid_multiplier: float
    time_late_multiplier: float
    decline_or_steroid_multiplier: float
    subependymal_present_multiplier: float
    subependymal_absent_multiplier: float
    rcbv_high_multiplier: float
    rcbv_low_multiplier: float
    adc_low_multiplier: float
    adc_high_multiplier: float
    mrs_tumour_multiplier: float
    mrs_not_tumour_multiplier: float
    flair_decrease_multiplier: float
    clamp_low: float
    clamp_high: float
    band: float


@dataclass(frozen=True, slots=True)
class GrowthCriteria:
    pd_volume_increase: float
    gompertz_k_max_ml: float
    interval_level: float
    interval_draws: int
    forecast_horizon_days: int


@dataclass(frozen=True, slots=True)
class Criteria:
    """One response-criteria profile, as shipped in ``config/criteria/<profile>.toml``."""

    version: int
    profile: Profile
    name: str
    baseline: BaselineCriteria
    measurability: MeasurabilityCriteria
    thresholds: Thresholds
    timing: TimingCriteria
    nonenhancing: NonEnhancingCriteria
    discordance: DiscordanceCriteria
    steroids: SteroidCriteria
    psp_prior: PspPriorCriteria
    growth: GrowthCriteria

    @property
    def label(self) -> str:
        """What every reason ends with, e.g. ``"RANO 2.0, criteria v1"``."""
        return f"{self.name}, criteria v{self.version}"

    def pr_threshold(self, mode: Mode) -> float:
        value = self.thresholds.pr_2d if mode is Mode.TWO_D else self.thresholds.pr_3d
        return self._require(value, mode)

    def pd_threshold(self, mode: Mode) -> float:
        value = self.thresholds.pd_2d if mode is Mode.TWO_D else self.thresholds.pd_3d
        return self._require(value, mode)

    def supports(self, mode: Mode) -> bool:
        return mode is Mode.TWO_D or (
            self.thresholds.pr_3d is not None and self.thresholds.pd_3d is not None
        )

    def _require(self, value: float | None, mode: Mode) -> float:
        if value is None:
            raise ConfigError(
                f"{self.name} defines no thresholds for mode {mode.value}",
                action="Use --mode 2d, or a profile with volumetric thresholds (rano2, mrano).",
            )
        return value


def load_criteria(profile: Profile | str, *, criteria_dir: Path | None = None) -> Criteria:
    """Load ``<criteria_dir>/<profile>.toml`` (default ``config/criteria``) into :class:`Criteria`."""
    try:
        chosen = Profile(str(profile).lower())
    except ValueError as exc:
        names = ", ".join(p.value for p in Profile)
        raise ConfigError(f"Unknown criteria profile {profile!r}", action=f"Use one of: {names}.") from exc
    path = (criteria_dir or CRITERIA_DIR) / f"{chosen.value}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"Criteria file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Criteria file {path} is not valid TOML", detail=str(exc)) from exc
    criteria = build_config(Criteria, data, source=path.name)
    if criteria.profile is not chosen:
        raise ConfigError(f"Criteria file {path} declares profile {criteria.profile.value!r}")
    return criteria
