"""Lesions outside the baseline targets entering the assessment (clinical-spec 8.4 row 2; issue 32).

A lesion that was non-measurable at baseline and is measurable now, or a new measurable enhancing
lesion, is progression of disease the target SPD cannot see: with no measurable disease at baseline
the SPD stays 0 mm² whatever grows. Such a scan is a candidate PD (a preliminary PD inside the
pseudoprogression window), and its reason names the lesions and their products. Once a preliminary
PD they made turned out to be pseudoprogression, the same lesions are followed against their own
smallest sum of products and count again only if they grow by the PD threshold (``pd_2d``, with the
``pd_min_rise_mm2`` absolute minimum) [H].
"""

from __future__ import annotations

from engine.criteria import Criteria, Mode
from engine.response.inputs import Timepoint
from engine.response.state import PatientState
from engine.response.wording import format_burden, format_change

RULE = "clinical-spec 8.4 row 2"


def emerging_lesions(tp: Timepoint, st: PatientState, criteria: Criteria) -> tuple[bool | None, bool | None, str]:
    """``(new_measurable_lesion, nonmeasurable_progression, reason)`` to classify ``tp`` with.

    The reason is empty when no new or newly measurable lesion counts on this scan.
    """
    new, became, non_measurable = tp.new_measurable_lesion, tp.became_measurable, tp.nonmeasurable_progression
    if not (new or became):
        return new, non_measurable, ""
    spd = tp.emerging_spd_mm2
    size = f" ({format_burden(spd, Mode.TWO_D)} of measurable disease outside the baseline targets)" if spd else ""
    if st.emerging_nadir is not None and spd is not None:
        ref, t = st.emerging_nadir, criteria.thresholds
        rise = spd - ref
        grew = rise >= t.pd_min_rise_mm2 and (rise / ref >= t.pd_2d if ref > 0 else spd >= t.regrowth_min_mm2)
        if not grew:  # the lesions of an earlier pseudoprogression, not growing: not progression again
            return False, non_measurable, ""
        change = f"{format_change(rise / ref)} over" if ref > 0 else "regrown from"
        return new, True, (f"the lesions outside the baseline targets, judged pseudoprogression before, measure "
                           f"{format_burden(spd, Mode.TWO_D)}, {change} their smallest sum "
                           f"{format_burden(ref, Mode.TWO_D)} (PD threshold {format_change(t.pd_2d)} and "
                           f">= {format_burden(t.pd_min_rise_mm2, Mode.TWO_D)}; {RULE})")
    parts = []
    if became:
        parts.append("a lesion non-measurable at baseline is now measurable: unequivocal progression of "
                     "non-measurable disease")
    if new:
        parts.append("a new measurable enhancing lesion")
    text = " and ".join(parts) + f"{size}, which counts as progression ({criteria.name}, {RULE})"
    return new, bool(non_measurable or became), text
