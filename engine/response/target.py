"""Target response, the quantitative part (clinical-spec 8.3).

PD is tested against the nadir before PR is tested against the baseline. A nadir of 0 (all
targets gone, or no measurable disease at baseline) turns any regrowth of at least
``regrowth_min_mm2`` (2D) / ``regrowth_min_ml`` (3D) into PD as new disease; a percentage over 0
means nothing. A percentage rise on a tiny lesion is noise too: PD by target burden also needs
an absolute rise over the nadir of ``pd_min_rise_mm2`` / ``pd_min_rise_ml`` [H].
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from engine.criteria import Criteria, Mode
from engine.response.wording import burden_name, format_burden, format_change, format_date


class TargetCategory(StrEnum):
    CR = "CR"
    PR = "PR"
    SD = "SD"
    PD = "PD"
    NO_DISEASE = "NO_DISEASE"  # no measurable disease at baseline and none now


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetResult:
    category: TargetCategory
    burden: float
    baseline: float
    nadir: float
    nadir_date: date | None
    change_vs_baseline: float | None  # None when the reference is 0
    change_vs_nadir: float | None
    text: str  # the quantitative clause of the reason


def target_response(
    *,
    burden: float,
    baseline: float,
    nadir: float,
    nadir_date: date | None,
    mode: Mode,
    criteria: Criteria,
) -> TargetResult:
    """Classify one timepoint's target burden against the baseline and the nadir (8.3)."""
    if burden < 0 or baseline < 0 or nadir < 0:
        msg = f"Burdens must be >= 0, got burden={burden}, baseline={baseline}, nadir={nadir}"
        raise ValueError(msg)
    pd = criteria.pd_threshold(mode)
    pr = criteria.pr_threshold(mode)
    name = burden_name(mode)
    now = format_burden(burden, mode)
    r_base = (burden - baseline) / baseline if baseline > 0 else None
    r_nadir = (burden - nadir) / nadir if nadir > 0 else None
    nadir_text = f"the nadir {format_burden(nadir, mode)} ({format_date(nadir_date)})"
    base_text = f"the baseline {format_burden(baseline, mode)}"

    def result(category: TargetCategory, text: str) -> TargetResult:
        return TargetResult(
            category=category, burden=burden, baseline=baseline, nadir=nadir,
            nadir_date=nadir_date, change_vs_baseline=r_base, change_vs_nadir=r_nadir, text=text,
        )

    if r_nadir is None:  # nadir 0
        regrowth_min = (
            criteria.thresholds.regrowth_min_mm2 if mode is Mode.TWO_D else criteria.thresholds.regrowth_min_ml
        )
        if burden >= regrowth_min:
            return result(
                TargetCategory.PD,
                f"{name} {now} after {nadir_text} is new measurable disease "
                f"(>= {format_burden(regrowth_min, mode)})",
            )
        if baseline == 0:
            return result(
                TargetCategory.NO_DISEASE,
                f"no measurable enhancing disease at baseline and {name} {now} now "
                f"(< {format_burden(regrowth_min, mode)})",
            )
    if burden == 0 and baseline > 0:
        return result(TargetCategory.CR, f"all target disease is gone ({name} 0, {base_text})")
    min_rise = criteria.thresholds.pd_min_rise_mm2 if mode is Mode.TWO_D else criteria.thresholds.pd_min_rise_ml
    if r_nadir is not None and r_nadir >= pd and burden - nadir < min_rise:
        return result(
            TargetCategory.SD,
            f"{name} {now} is {format_change(r_nadir)} over {nadir_text}, but a rise of "
            f"{format_burden(burden - nadir, mode)} is below the {format_burden(min_rise, mode)} needed "
            "to call PD on so small a lesion",
        )
    if r_nadir is not None and r_nadir >= pd:
        return result(
            TargetCategory.PD,
            f"{name} {now} is {format_change(r_nadir)} over {nadir_text}, "
            f"at or above the PD threshold {format_change(pd)}",
        )
    if r_base is not None and r_base <= pr:
        return result(
            TargetCategory.PR,
            f"{name} {now} is {format_change(r_base)} vs {base_text}, "
            f"at or below the PR threshold {format_change(pr)}",
        )
    nadir_part = f"{format_change(r_nadir)} vs {nadir_text}" if r_nadir is not None else nadir_text
    base_part = f"{format_change(r_base)} vs {base_text}" if r_base is not None else base_text
    return result(
        TargetCategory.SD,
        f"{name} {now} is {base_part} and {nadir_part}, between the PR "
        f"({format_change(pr)}) and PD ({format_change(pd)}) thresholds",
    )
