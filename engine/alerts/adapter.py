"""Assessment output -> :class:`AlertInput` values, in one place. Pure, no I/O.

``calls`` are a patient's :class:`ResponseCall` values in scan order (``assess_patient``) and
``timepoints`` the :class:`Timepoint` values they were computed from (same order); ``risks`` the
PsP estimates by study UID. Growth for the rapid-growth rule is measured here from the enhancing
volumes since baseline: nadir = the smallest ET volume on an earlier scan since baseline; the VDT
over the recent interval, from the latest earlier scan at least ``min_interval_days`` before this
one (the previous scan when none is), never from the nadir across a shrinking course (issue 32).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.alerts.rules import AlertInput, QaEvents, volume_doubling_time_days
from engine.response.inputs import ResponseCall, Timepoint
from engine.risk import PspEstimate
from engine.types import Response


def alert_inputs(
    calls: Sequence[ResponseCall],
    timepoints: Sequence[Timepoint],
    *,
    patient_key: str,
    risks: Mapping[str, PspEstimate] | None = None,
    qa: Mapping[str, QaEvents] | None = None,
    profile_uses_nonce: bool = False,
    antiangiogenic_therapy: bool = False,
    confirm_interval_weeks: int = 4,
    psp_window_weeks: float = 12.0,
    min_interval_days: int = 28,
) -> tuple[AlertInput, ...]:
    """One :class:`AlertInput` per call (feed each to ``evaluate_alerts``; re-runs are idempotent)."""
    if len(calls) != len(timepoints):
        msg = f"Arguments 'calls' and 'timepoints' must have the same length, got {len(calls)} and {len(timepoints)}"
        raise ValueError(msg)
    risks = risks or {}
    qa = qa or {}
    start = next((k for k, c in enumerate(calls) if c.category is Response.BASELINE), None)
    out: list[AlertInput] = []
    for k, (call, tp) in enumerate(zip(calls, timepoints, strict=True)):
        earlier = list(zip(calls[start:k], timepoints[start:k], strict=True)) if start is not None and k > start else []
        et_nadir = min(((t.et_ml, t) for _, t in earlier if t.et_ml is not None), default=None, key=lambda x: x[0])
        snfh_nadir = min((t.snfh_ml for _, t in earlier if t.snfh_ml is not None), default=None)
        volumes = [t for _, t in earlier if t.et_ml is not None]
        previous = volumes[-1] if volumes else None
        reference = next((t for t in reversed(volumes) if (tp.scan_date - t.scan_date).days >= min_interval_days),
                         previous)
        vdt = interval = None
        if reference is not None and tp.et_ml is not None:
            interval = (tp.scan_date - reference.scan_date).days
            vdt = volume_doubling_time_days(first_ml=reference.et_ml, second_ml=tp.et_ml, interval_days=interval)
            if vdt is None and reference.et_ml == 0 and tp.et_ml > 0:
                vdt = 0.0  # regrowth from nothing: faster than any doubling time
        nonce_pct = None
        if snfh_nadir is not None and snfh_nadir > 0 and tp.snfh_ml is not None:
            nonce_pct = 100.0 * (tp.snfh_ml - snfh_nadir) / snfh_nadir
        risk = risks.get(call.study_uid)
        out.append(AlertInput(
            patient_key=patient_key, study_uid=call.study_uid, study_date=call.scan_date, criteria=call.criteria,
            response=call.category, previous_response=calls[k - 1].category if k else None,
            final_response=call.final_category, pd_date=call.pd_date,
            psp_probability=risk.probability if risk else None, psp_low=risk.low if risk else None,
            psp_high=risk.high if risk else None, confirm_interval_weeks=confirm_interval_weeks,
            reason=call.reason, new_measurable_lesion=tp.new_measurable_lesion,
            new_lesion_outside_field=tp.new_lesion_outside_field, et_ml=tp.et_ml,
            nadir_et_ml=et_nadir[0] if et_nadir else None, previous_et_ml=previous.et_ml if previous else None,
            vdt_days=vdt, interval_days=interval, weeks_post_rt=call.weeks_post_rt, psp_window_weeks=psp_window_weeks,
            scan_interval_days=(tp.scan_date - timepoints[k - 1].scan_date).days if k else None,
            nonce_growth_pct=nonce_pct, profile_uses_nonce=profile_uses_nonce,
            antiangiogenic_therapy=antiangiogenic_therapy,
            steroid_watch=call.category is Response.STEROID_WATCH, qa=qa.get(call.study_uid, QaEvents()),
        ))
    return tuple(out)
