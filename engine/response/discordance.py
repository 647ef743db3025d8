"""2D and volumetric assessments side by side (clinical-spec 4.3; issue 32): pure, no I/O.

On a sphere SPD +25 % is volume +40 % (4.3), so the two measures should agree on progression. When
one of them shows PD and the other has not risen by the fraction ``[discordance]`` asks for
(``min_volume_change_for_2d_pd`` for a 2D PD, ``min_spd_change_for_3d_pd`` for a volumetric PD), the
scan is **discordant**: routed to a reader, never called (or alerted) as PD. A longest diameter that
drifts while the enhancing volume stays flat is the typical case. Volumes below ``min_volume_ml`` at
their nadir are too noisy to judge (S46) and an SPD nadir of 0 has no percentage: no discordance then.
"""

from __future__ import annotations

from engine.criteria import Criteria, Mode
from engine.response.state import PatientState
from engine.response.target import TargetResult
from engine.response.wording import format_burden, format_change, format_date

RULE = "discordance rule [H]"


def discordance_text(target: TargetResult, other: float | None, st: PatientState, criteria: Criteria,
                     mode: Mode) -> str:
    """Why the primary measure (``target``) and ``other`` (ET mL in 2D mode, SPD mm² in 3D mode)
    disagree on progression, or ``""`` when they do not."""
    rules = criteria.discordance
    if not rules.enabled or other is None or st.alt_nadir is None:
        return ""
    if mode is Mode.TWO_D:
        spd, spd_ref, vol, vol_ref = target.burden, target.nadir, other, st.alt_nadir
        spd_ref_date, vol_ref_date = target.nadir_date, st.alt_nadir_date
    else:
        spd, spd_ref, vol, vol_ref = other, st.alt_nadir, target.burden, target.nadir
        spd_ref_date, vol_ref_date = st.alt_nadir_date, target.nadir_date
    if spd_ref <= 0 or vol_ref < rules.min_volume_ml:
        return ""
    t = criteria.thresholds
    spd_change, vol_change = (spd - spd_ref) / spd_ref, (vol - vol_ref) / vol_ref
    spd_text = (f"SPD {format_burden(spd, Mode.TWO_D)} is {format_change(spd_change)} vs its nadir "
                f"{format_burden(spd_ref, Mode.TWO_D)} ({format_date(spd_ref_date)})")
    vol_text = (f"ET volume {format_burden(vol, Mode.THREE_D)} is {format_change(vol_change)} vs its nadir "
                f"{format_burden(vol_ref, Mode.THREE_D)} ({format_date(vol_ref_date)})")
    pd_2d = spd_change >= t.pd_2d and spd - spd_ref >= t.pd_min_rise_mm2
    if pd_2d and vol_change < rules.min_volume_change_for_2d_pd:
        return (f"{spd_text}, at or above the 2D PD threshold {format_change(t.pd_2d)}, but the {vol_text}, below the "
                f"{_threshold(rules.min_volume_change_for_2d_pd)} a 2D PD needs from the volumes ({RULE})")
    pd_3d = t.pd_3d is not None and vol_change >= t.pd_3d and vol - vol_ref >= t.pd_min_rise_ml
    if pd_3d and spd_change < rules.min_spd_change_for_3d_pd:
        return (f"{vol_text}, at or above the volumetric PD threshold {format_change(t.pd_3d)}, but the "
                f"{spd_text}, below the {_threshold(rules.min_spd_change_for_3d_pd)} a volumetric PD needs "
                f"from the 2D measurement ({RULE})")
    return ""


def _threshold(fraction: float) -> str:
    """``0.125`` -> ``"+12.5 %"`` (a configured threshold quoted exactly)."""
    return f"{fraction * 100:+g} %"
