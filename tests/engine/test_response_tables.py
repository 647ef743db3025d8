"""One case per row of the decision tables in clinical-spec 8.3 and 8.4, named as a clinician would."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.criteria import CRITERIA_DIR, Mode, load_criteria
from engine.response import (
    ClinicalStatus,
    FindingKind,
    SteroidStatus,
    TargetCategory,
    TimepointEvidence,
    classify_timepoint,
    target_response,
)

RANO2 = load_criteria("rano2")
NADIR_DATE = date(2025, 3, 2)

# --- 8.3 target response ------------------------------------------------------------------------

TARGET_CASES = [
    # (id, mode, burden, baseline, nadir, expected)
    ("all targets gone -> CR", "2d", 0.0, 1305.0, 1305.0, TargetCategory.CR),
    ("SPD +25 % over nadir -> PD (exactly at the threshold)", "2d", 1250.0, 1500.0, 1000.0, TargetCategory.PD),
    ("SPD +41 % over nadir 1,305 mm2 -> PD", "2d", 1840.0, 1305.0, 1305.0, TargetCategory.PD),
    ("SPD +24 % over nadir -> not PD, SD", "2d", 1240.0, 1000.0, 1000.0, TargetCategory.SD),
    ("SPD -50 % vs baseline -> PR (exactly at the threshold)", "2d", 500.0, 1000.0, 1000.0, TargetCategory.PR),
    ("SPD -49 % vs baseline -> SD", "2d", 510.0, 1000.0, 1000.0, TargetCategory.SD),
    ("PD over nadir is tested before PR vs baseline", "2d", 400.0, 1000.0, 300.0, TargetCategory.PD),
    ("ET volume +40 % over nadir -> PD (3D)", "3d", 14.0, 10.0, 10.0, TargetCategory.PD),
    ("ET volume +39 % over nadir -> SD (3D)", "3d", 13.9, 10.0, 10.0, TargetCategory.SD),
    ("ET volume -65 % vs baseline -> PR (3D)", "3d", 3.5, 10.0, 10.0, TargetCategory.PR),
    ("ET volume -60 % vs baseline -> SD (3D: -50 % is not enough)", "3d", 4.0, 10.0, 10.0, TargetCategory.SD),
    ("regrowth >= 10x10 mm after a nadir of 0 -> PD (new disease)", "2d", 120.0, 1000.0, 0.0, TargetCategory.PD),
    ("no measurable disease at baseline, none now", "2d", 0.0, 0.0, 0.0, TargetCategory.NO_DISEASE),
]


@pytest.mark.parametrize(("mode", "burden", "baseline", "nadir", "expected"),
                         [c[1:] for c in TARGET_CASES], ids=[c[0] for c in TARGET_CASES])
def test_target_response_table(mode: str, burden: float, baseline: float, nadir: float,
                               expected: TargetCategory) -> None:
    result = target_response(burden=burden, baseline=baseline, nadir=nadir, nadir_date=NADIR_DATE,
                             mode=Mode(mode), criteria=RANO2)
    assert result.category is expected, result.text


def test_target_reason_quotes_the_numbers() -> None:
    result = target_response(burden=1840.0, baseline=1305.0, nadir=1305.0, nadir_date=NADIR_DATE,
                             mode=Mode.TWO_D, criteria=RANO2)
    assert result.text == ("SPD 1,840 mm² is +41 % over the nadir 1,305 mm² (2025-03-02), "
                           "at or above the PD threshold +25 %")


def test_rano2010_has_no_volumetric_thresholds() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="no thresholds for mode 3d"):
        target_response(burden=1.0, baseline=1.0, nadir=1.0, nadir_date=None, mode=Mode.THREE_D,
                        criteria=load_criteria("rano2010"))


# --- 8.4 overall timepoint response -------------------------------------------------------------


def _target(category: str) -> object:
    values = {"CR": 0.0, "PR": 400.0, "SD": 1000.0, "PD": 1400.0}[category]
    result = target_response(burden=values, baseline=1000.0, nadir=1000.0, nadir_date=NADIR_DATE,
                             mode=Mode.TWO_D, criteria=RANO2)
    assert result.category.value == category
    return result


def _steroids(dose: float | None, *, baseline: float | None = 2.0, previous: float | None = 2.0) -> SteroidStatus:
    return SteroidStatus(dose_mg=dose, baseline_mg=baseline, previous_mg=previous, physiological_mg=0.75)


OVERALL_CASES = [
    # id, target, evidence kwargs, steroid dose, expected kind, expected row
    ("histology shows recurrent tumour -> PD (row 1)", "SD", {"histology_recurrent": True}, 2.0,
     FindingKind.PD_HISTOLOGY, 1),
    ("new measurable lesion -> candidate PD (row 2)", "SD", {"new_measurable_lesion": True}, 2.0,
     FindingKind.CANDIDATE_PD, 2),
    ("non-measurable disease clearly worse -> candidate PD (row 2)", "PR", {"nonmeasurable_progression": True},
     2.0, FindingKind.CANDIDATE_PD, 2),
    ("SPD +40 % over nadir -> candidate PD (row 2)", "PD", {}, 2.0, FindingKind.CANDIDATE_PD, 2),
    ("tumour-related clinical decline, imaging stable -> PD (row 3)", "SD",
     {"clinical_status": ClinicalStatus.WORSE}, 2.0, FindingKind.CLINICAL_PD, 3),
    ("RANO 2010 inside the window: clinical decline alone is not PD (row 3 exception)", "SD",
     {"clinical_status": ClinicalStatus.WORSE, "decline_counts": False}, 2.0, FindingKind.SD, 9),
    ("significant T2/FLAIR increase where the profile uses it -> candidate PD (row 4)", "SD",
     {"nonce_increase_text": "SNFH +60 % over its nadir"}, 2.0, FindingKind.CANDIDATE_PD, 4),
    ("steroids raised, imaging stable -> steroid watch (row 5)", "SD", {}, 8.0, FindingKind.STEROID_WATCH, 5),
    ("steroids raised, imaging better -> steroid watch (row 5)", "PR", {}, 8.0, FindingKind.STEROID_WATCH, 5),
    ("all enhancement gone, off steroids, clinically stable -> CR (row 6)", "CR",
     {"clinical_status": ClinicalStatus.STABLE}, 0.0, FindingKind.CR, 6),
    ("all enhancement gone but still on steroids -> PR (row 7)", "CR", {}, 2.0, FindingKind.PR, 7),
    ("SPD -60 %, steroids not above baseline -> PR (row 7)", "PR", {"clinical_status": ClinicalStatus.IMPROVED},
     2.0, FindingKind.PR, 7),
    ("SPD -60 % but steroids above baseline since before -> SD (row 8)", "PR", {}, "8-kept",
     FindingKind.SD, 8),
    ("SPD +5 %, nothing else -> SD (row 9)", "SD", {}, 2.0, FindingKind.SD, 9),
]


@pytest.mark.parametrize(("target", "kwargs", "dose", "kind", "row"),
                         [c[1:] for c in OVERALL_CASES], ids=[c[0] for c in OVERALL_CASES])
def test_overall_timepoint_table(target: str, kwargs: dict, dose: object, kind: FindingKind, row: int) -> None:
    steroids = _steroids(8.0, previous=8.0) if dose == "8-kept" else _steroids(dose)  # type: ignore[arg-type]
    evidence = TimepointEvidence(target=_target(target), steroids=steroids, **kwargs)  # type: ignore[arg-type]
    finding = classify_timepoint(evidence, criteria=RANO2)
    assert (finding.kind, finding.row) == (kind, row), finding.text


def test_candidate_pd_with_decline_is_flagged() -> None:
    evidence = TimepointEvidence(target=_target("PD"), steroids=_steroids(2.0),
                                 clinical_status=ClinicalStatus.WORSE)  # type: ignore[arg-type]
    finding = classify_timepoint(evidence, criteria=RANO2)
    assert finding.kind is FindingKind.CANDIDATE_PD and finding.with_decline


def test_unknown_steroid_dose_does_not_block_a_response_but_is_said() -> None:
    evidence = TimepointEvidence(target=_target("PR"), steroids=_steroids(None))  # type: ignore[arg-type]
    finding = classify_timepoint(evidence, criteria=RANO2)
    assert finding.kind is FindingKind.PR
    assert "steroid dose not recorded" in finding.text


# --- shipped profiles -----------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["rano2", "mrano", "rano2010"])
def test_every_shipped_profile_loads_with_a_version(profile: str) -> None:
    criteria = load_criteria(profile)
    assert criteria.version >= 1 and criteria.profile.value == profile
    assert criteria.label.endswith(f"criteria v{criteria.version}")
    assert criteria.thresholds.pd_2d == 0.25 and criteria.thresholds.pr_2d == -0.50


def test_profile_differences_from_the_spec_table() -> None:
    rano2, mrano, rano2010 = (load_criteria(p) for p in ("rano2", "mrano", "rano2010"))
    assert (rano2.measurability.n_target_max, rano2010.measurability.n_target_max) == (3, 5)
    assert rano2.baseline.rule.value == "first_post_rt" and rano2010.baseline.rule.value == "first_post_op"
    assert mrano.timing.confirm_required_after_window and not rano2.timing.confirm_required_after_window
    assert rano2.supports(Mode.THREE_D) and not rano2010.supports(Mode.THREE_D)


def test_a_broken_profile_is_refused_with_the_key(tmp_path) -> None:
    from engine.errors import ConfigError

    text = (Path(CRITERIA_DIR) / "rano2.toml").read_text(encoding="utf-8")
    (tmp_path / "rano2.toml").write_text(text.replace("pd_2d = 0.25", "pd_2d = \"a lot\""), encoding="utf-8")
    with pytest.raises(ConfigError, match="pd_2d must be a number"):
        load_criteria("rano2", criteria_dir=tmp_path)
    (tmp_path / "rano2.toml").write_text(text.replace("pd_2d = 0.25", "pd_2dd = 0.25"), encoding="utf-8")
    with pytest.raises(ConfigError, match="Unknown key"):
        load_criteria("rano2", criteria_dir=tmp_path)
    with pytest.raises(ConfigError, match="Unknown criteria profile"):
        load_criteria("recist")


def test_tiny_lesion_rise_below_the_absolute_minimum_is_not_pd() -> None:
    result = target_response(burden=48.0, baseline=460.0, nadir=36.0, nadir_date=NADIR_DATE,
                             mode=Mode.TWO_D, criteria=RANO2)  # +33 % but only +12 mm²
    assert result.category is TargetCategory.SD
    assert "below the 50.0 mm² needed" in result.text
