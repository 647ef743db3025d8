"""Temporal / confirmation state machine (clinical-spec 8.5) over one patient's scans.

States: before the baseline; tracking (baseline set, nadir kept); preliminary PD (waiting for a
confirmation scan); steroid watch (imaging stable, steroids raised); progressed (PD called: later
scans need a new baseline and are NE here). Two views per scan: ``category`` is the call as it
stood on that date; ``final_category`` is what later scans made of it:

* PRELIM_PD -> PD (``pd_date`` back-dated to the preliminary scan) or PSEUDOPROGRESSION; the scan
  that refutes it is not labelled PSEUDOPROGRESSION but gets its own category (CR/PR/SD);
* DISCORDANT (the 2D and volumetric assessments disagree on progression, ``discordance.py``) stays
  DISCORDANT for a reader; it is not a PD and does not become the nadir;
* a first CR/PR keeps its label only if a scan >= RESPONSE_CONFIRM_WEEKS later confirms it, else SD
  (with no later scan yet it stays as called: confirmation pending);
* STEROID_WATCH -> SD (dose back to baseline, or imaging progression later) or PD dated to the
  first steroid increase (tumour-related decline follows).

Baseline: RANO 2.0 / mRANO take the first scan after RT end (scans on or before it are
PRE_BASELINE); with RT end unknown every scan is NE, saying so. RANO 2010 takes the first scan
given (the first post-operative scan; scans on or before a known surgery date are PRE_BASELINE);
with RT end unknown, a candidate PD there is NE because the 12-week window cannot be placed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from engine.criteria import BaselineRule, Criteria, InWindowRule, Mode, NonCeRule
from engine.errors import AssessmentError
from engine.response.confirmation import ppd_step, response_step
from engine.response.discordance import discordance_text
from engine.response.emerging import emerging_lesions
from engine.response.inputs import Idh, PatientContext, ResponseCall, Timepoint
from engine.response.state import (
    Draft,
    PatientState,
    Scan,
    close_pending,
    close_run,
    open_ppd,
    progress,
    update_nadir,
)
from engine.response.target import target_response
from engine.response.timepoint import Finding, FindingKind, SteroidStatus, TimepointEvidence, classify_timepoint
from engine.response.wording import burden_name, format_burden, format_change, format_date, format_weeks
from engine.types import Response



def assess_patient(
    timepoints: Sequence[Timepoint], context: PatientContext, *, criteria: Criteria, mode: Mode
) -> tuple[ResponseCall, ...]:
    """Response calls for one patient's scans, returned in the order given."""
    dates = [tp.scan_date for tp in timepoints]
    if len(set(dates)) != len(dates):
        dup = sorted({d for d in dates if dates.count(d) > 1})
        raise AssessmentError(
            f"Two scans on the same date ({', '.join(d.isoformat() for d in dup)})",
            exam=f"patient {context.patient_key}",
            action="Keep one scan per date (the post-contrast study used for measurement).",
        )
    criteria.pd_threshold(mode)  # a profile without this mode fails here, before any call
    order = sorted(range(len(timepoints)), key=lambda i: timepoints[i].scan_date)
    drafts: dict[int, Draft] = {}
    state = PatientState()
    for i in order:
        drafts[i] = _step(i, timepoints[i], state, drafts, context, criteria, mode)
        if drafts[i].category is not Response.NE and state.phase != "pre":
            state.previous_steroid = timepoints[i].steroid_dose_mg
            state.previous_date = timepoints[i].scan_date
    return tuple(_finish(drafts[i], timepoints[i], context, criteria) for i in range(len(timepoints)))


def _step(
    i: int, tp: Timepoint, st: PatientState, drafts: dict[int, Draft], ctx: PatientContext,
    criteria: Criteria, mode: Mode,
) -> Draft:
    weeks = (tp.scan_date - ctx.rt_end_date).days / 7 if ctx.rt_end_date else None
    burden = tp.spd_mm2 if mode is Mode.TWO_D else tp.et_ml
    name = burden_name(mode)
    if st.phase == "pre":
        return _baseline_step(tp, st, ctx, criteria, mode, weeks, burden)
    if st.phase == "progressed":
        return Draft(Response.NE, f"PD was called on {format_date(st.pd_date)}: later scans need a new "
                      "baseline (new line of therapy) and are not assessed against the old one")
    if burden is None:
        return Draft(Response.NE, f"{name} was not recorded for this scan, so it cannot be assessed")
    st_baseline, st_baseline_date = st.baseline, st.baseline_date
    scan = _scan(i, tp, st, ctx, criteria, mode, weeks, burden)
    if st.phase == "ppd":
        draft = ppd_step(scan, st, drafts, criteria, mode)
        if draft is None:  # refuted: pseudoprogression on the preliminary-PD scans, a response category here
            resolved, st.resolved = st.resolved, ""
            scan = _scan(i, tp, st, ctx, criteria, mode, weeks, burden)  # the refuted lesions now under watch
            draft = _tracking_step(scan, st, drafts, criteria, mode, ctx)
            draft.reason = f"{draft.reason}; {resolved}"
    elif st.phase == "watch":
        draft = _watch_step(scan, st, drafts, criteria, mode, ctx)
    else:
        draft = _tracking_step(scan, st, drafts, criteria, mode, ctx)
    if (st.emerging_nadir is not None and tp.emerging_spd_mm2 and draft.category is not Response.PD
            and "outside the baseline targets" not in draft.reason):
        draft.reason += (f"; the lesions outside the baseline targets measure "
                         f"{format_burden(tp.emerging_spd_mm2, Mode.TWO_D)}, not progressing over their smallest "
                         f"sum {format_burden(st.emerging_nadir, Mode.TWO_D)}")
    target = scan.target
    draft.extra.update(burden=burden, baseline=st_baseline, baseline_date=st_baseline_date,
                       nadir=target.nadir, nadir_date=target.nadir_date,
                       change_vs_baseline=target.change_vs_baseline, change_vs_nadir=target.change_vs_nadir)
    if draft.category not in {Response.PRELIM_PD, Response.PD, Response.NE, Response.DISCORDANT}:
        update_nadir(tp, st, burden, _other_measure(tp, mode))
    return draft


def _other_measure(tp: Timepoint, mode: Mode) -> float | None:
    """The measure assessed side by side with the primary one: ET volume in 2D mode, SPD in 3D mode."""
    return tp.et_ml if mode is Mode.TWO_D else tp.spd_mm2


def _scan(i: int, tp: Timepoint, st: PatientState, ctx: PatientContext, criteria: Criteria, mode: Mode,
          weeks: float | None, burden: float) -> Scan:
    """What the rules read off one scan: target response, steroids, lesions, the 8.4 finding, discordance."""
    target = target_response(burden=burden, baseline=st.baseline, nadir=st.nadir,  # type: ignore[arg-type]
                             nadir_date=st.nadir_date, mode=mode, criteria=criteria)
    window = criteria.timing.psp_window_weeks
    in_window = weeks is not None and weeks < window
    rano2010_window = criteria.timing.in_window_rule is InWindowRule.OUTSIDE_FIELD_OR_HISTOLOGY and (
        weeks is None or in_window)
    steroids = SteroidStatus(dose_mg=tp.steroid_dose_mg, baseline_mg=st.baseline_steroid,
                             previous_mg=st.previous_steroid, physiological_mg=criteria.steroids.physiological_mg)
    new, non_measurable, emerging_text = emerging_lesions(tp, st, criteria)
    finding = classify_timepoint(TimepointEvidence(
        target=target, steroids=steroids, new_measurable_lesion=new,
        nonmeasurable_progression=non_measurable, clinical_status=tp.clinical_status,
        histology_recurrent=tp.histology_recurrent, emerging_text=emerging_text,
        nonce_increase_text=_nonce_text(tp, st, ctx, criteria), decline_counts=not rano2010_window),
        criteria=criteria)
    discordance = ""
    if finding.row in {2, 6, 7, 8, 9} and not (new or non_measurable or finding.with_decline):
        discordance = discordance_text(target, _other_measure(tp, mode), st, criteria, mode)
    return Scan(index=i, tp=tp, burden=burden, target=target, finding=finding, steroids=steroids,
                timing=_timing_text(tp, st, criteria, finding), weeks=weeks, in_window=in_window,
                discordance=discordance)


def _baseline_step(tp: Timepoint, st: PatientState, ctx: PatientContext, criteria: Criteria, mode: Mode,
                   weeks: float | None, burden: float | None) -> Draft:
    name = burden_name(mode)
    if criteria.baseline.rule is BaselineRule.FIRST_POST_RT:
        if ctx.rt_end_date is None:
            return Draft(Response.NE, f"the end of radiotherapy is not recorded, and {criteria.name} takes the "
                          "first scan after it as baseline, so this scan cannot be placed; enter the RT end date")
        if tp.scan_date <= ctx.rt_end_date:
            return Draft(Response.PRE_BASELINE, f"scan on or before the end of radiotherapy "
                          f"({ctx.rt_end_date.isoformat()}); {criteria.name} takes the first scan after it as baseline")
    elif ctx.surgery_date is not None and tp.scan_date <= ctx.surgery_date:
        return Draft(Response.PRE_BASELINE, f"scan on or before surgery ({ctx.surgery_date.isoformat()}); "
                      f"{criteria.name} takes the first post-operative scan as baseline")
    if burden is None:
        return Draft(Response.NE, f"{name} was not recorded, so this scan cannot be the baseline; "
                      "the next scan with measurements will be")
    st.phase, st.baseline, st.baseline_date = "tracking", burden, tp.scan_date
    st.nadir, st.nadir_date, st.snfh_nadir = burden, tp.scan_date, tp.snfh_ml
    st.alt_nadir, st.alt_nadir_date = _other_measure(tp, mode), tp.scan_date
    st.baseline_steroid = tp.steroid_dose_mg
    when = (f"the first scan after the end of radiotherapy ({format_weeks(weeks)} after it)"
            if criteria.baseline.rule is BaselineRule.FIRST_POST_RT else "the first post-operative scan")
    draft = Draft(Response.BASELINE, f"{name} {format_burden(burden, mode)} on {when} is the baseline and nadir")
    draft.extra.update(burden=burden)
    return draft


def _tracking_step(scan: Scan, st: PatientState, drafts: dict[int, Draft], criteria: Criteria, mode: Mode,
                   ctx: PatientContext) -> Draft:
    finding, tp, timing = scan.finding, scan.tp, scan.timing
    kind = finding.kind
    if kind in {FindingKind.PD_HISTOLOGY, FindingKind.CLINICAL_PD}:
        close_pending(st, drafts, "progression followed before the response was confirmed", criteria.label)
        return progress(st, tp.scan_date, f"{finding.text}: PD{timing}")
    if scan.discordance and kind in {FindingKind.CANDIDATE_PD, FindingKind.CR, FindingKind.PR, FindingKind.SD}:
        close_pending(st, drafts, f"the scan of {tp.scan_date.isoformat()} was discordant", criteria.label)
        return Draft(Response.DISCORDANT, f"{scan.discordance}: the 2D and volumetric assessments disagree on "
                      f"progression, so no PD is called; discordant, for a reader to decide{timing}")
    if kind is FindingKind.CANDIDATE_PD:
        close_pending(st, drafts, "progression followed before the response was confirmed", criteria.label)
        return _candidate_pd(scan, st, criteria, ctx)
    if kind is FindingKind.STEROID_WATCH:
        close_pending(st, drafts, "steroids were raised before the response was confirmed", criteria.label)
        st.phase, st.run, st.run_start, st.confirmed = "watch", [scan.index], tp.scan_date, None
        return Draft(Response.STEROID_WATCH, f"{finding.text}: neither SD nor PD, watch the dose and the "
                      f"clinical course{timing}")
    if kind in {FindingKind.CR, FindingKind.PR}:
        return response_step(scan, st, drafts, criteria, Response(kind.value))
    close_pending(st, drafts, f"the scan of {tp.scan_date.isoformat()} was SD", criteria.label)
    st.confirmed = None
    return Draft(Response.SD, f"{finding.text}: SD{timing}")


def _candidate_pd(scan: Scan, st: PatientState, criteria: Criteria, ctx: PatientContext) -> Draft:
    finding, tp, timing, weeks = scan.finding, scan.tp, scan.timing, scan.weeks
    window = criteria.timing.psp_window_weeks
    if criteria.timing.in_window_rule is InWindowRule.OUTSIDE_FIELD_OR_HISTOLOGY:
        if weeks is None:
            return Draft(Response.NE, f"{finding.text}, but the end of radiotherapy is not recorded, so it is "
                          f"unknown whether this is inside the {window:g}-week pseudoprogression window; "
                          "enter the RT end date")
        if scan.in_window:
            if tp.new_lesion_outside_field:
                return progress(st, tp.scan_date, f"{finding.text}, with new enhancement outside the RT field: "
                                 f"PD even inside the {window:g}-week window{timing}")
            open_ppd(scan, st)
            return Draft(Response.PRELIM_PD, f"{finding.text}, but {format_weeks(weeks)} after RT end only new "
                          "enhancement outside the RT field or histology can call PD: indeterminate, repeat the "
                          f"scan in {criteria.timing.confirm_interval_weeks:g} weeks{timing}")
        return progress(st, tp.scan_date, f"{finding.text}, {format_weeks(weeks)} after RT end: PD{timing}")
    needs_confirmation = (weeks is None or scan.in_window or criteria.timing.confirm_required_after_window
                          or ctx.high_psp_therapy)
    if not needs_confirmation:
        return progress(st, tp.scan_date, f"{finding.text}, {format_weeks(weeks)} after RT end (past the "
                         f"{window:g}-week window): PD{timing}")
    open_ppd(scan, st)
    if weeks is None:
        why = "the end of radiotherapy is not recorded"
    elif scan.in_window:
        why = f"{format_weeks(weeks)} after RT end, inside the {window:g}-week pseudoprogression window"
    elif ctx.high_psp_therapy:
        why = "on a therapy with a high pseudoprogression rate"
    else:
        why = f"{criteria.name} confirms every PD"
    due = tp.scan_date + timedelta(weeks=criteria.timing.confirm_interval_weeks)
    return Draft(Response.PRELIM_PD, f"{finding.text}; {why}: preliminary PD, confirmation scan due from "
                  f"{due.isoformat()}{timing}")


def _watch_step(scan: Scan, st: PatientState, drafts: dict[int, Draft], criteria: Criteria, mode: Mode,
                ctx: PatientContext) -> Draft:
    finding, tp, start = scan.finding, scan.tp, st.run_start
    if finding.with_decline or finding.kind is FindingKind.CLINICAL_PD:
        run = list(st.run)
        draft = progress(st, start, f"{finding.text} after steroids were raised on {start.isoformat()}: PD, "
                          f"dated to the first steroid increase{scan.timing}")
        for j in run:
            drafts[j].final, drafts[j].pd_date = Response.PD, start
            drafts[j].final_reason = (f"tumour-related decline followed on {tp.scan_date.isoformat()}: PD dated "
                                      f"to the first steroid increase [{criteria.label}]")
        return draft
    if finding.kind in {FindingKind.PD_HISTOLOGY, FindingKind.CANDIDATE_PD}:
        close_run(st, drafts, Response.SD, f"imaging progression was found later ({tp.scan_date.isoformat()}); "
                   f"while steroids were raised imaging was stable: SD [{criteria.label}]")
        st.phase = "tracking"
        return _tracking_step(scan, st, drafts, criteria, mode, ctx)
    if scan.steroids.above_baseline:
        st.run.append(scan.index)
        return Draft(Response.STEROID_WATCH, f"{scan.target.text}; {scan.steroids.text} is still above baseline "
                      f"since {start.isoformat()} without tumour-related decline: steroid watch continues"
                      f"{scan.timing}")
    close_run(st, drafts, Response.SD, f"the steroid dose was back to baseline on {tp.scan_date.isoformat()} "
               f"without tumour-related decline: SD [{criteria.label}]")
    st.phase = "tracking"
    return _tracking_step(scan, st, drafts, criteria, mode, ctx)


def _nonce_text(tp: Timepoint, st: PatientState, ctx: PatientContext, criteria: Criteria) -> str:
    rule = criteria.nonenhancing.nonce_for_pd
    if rule is NonCeRule.NEVER or (rule is NonCeRule.IDH_MUTANT and ctx.idh is not Idh.MUTANT):
        return ""
    if tp.snfh_ml is None or st.snfh_nadir is None:
        return ""
    rise = tp.snfh_ml - st.snfh_nadir
    limit = criteria.nonenhancing
    if st.snfh_nadir > 0 and rise / st.snfh_nadir >= limit.nonce_pd_increase and rise >= limit.nonce_pd_min_ml:
        return (f"T2/FLAIR (SNFH) volume {tp.snfh_ml:.1f} mL is {format_change(rise / st.snfh_nadir)} over its "
                f"nadir {st.snfh_nadir:.1f} mL (significant: >= {format_change(limit.nonce_pd_increase)} and "
                f">= {limit.nonce_pd_min_ml:g} mL)")
    return ""


def _timing_text(tp: Timepoint, st: PatientState, criteria: Criteria, finding: Finding) -> str:
    parts = []
    if finding.kind is FindingKind.CANDIDATE_PD and st.previous_date is not None:
        gap = (tp.scan_date - st.previous_date).days
        if gap < criteria.timing.min_scan_interval_days:
            parts.append(f"note: only {gap} days since the previous scan (< "
                         f"{criteria.timing.min_scan_interval_days} days), so the change is less specific")
    return (" (" + "; ".join(parts) + ")") if parts else ""


def _finish(draft: Draft, tp: Timepoint, ctx: PatientContext, criteria: Criteria) -> ResponseCall:
    final = draft.final or draft.category
    weeks = (tp.scan_date - ctx.rt_end_date).days / 7 if ctx.rt_end_date else None
    extra = draft.extra
    pd_date = draft.pd_date if final is Response.PD else None
    return ResponseCall(
        scan_date=tp.scan_date, study_uid=tp.study_uid, category=draft.category, final_category=final,
        reason=f"{_capital(draft.reason)} [{criteria.label}].",
        final_reason=_capital(draft.final_reason) + "." if draft.final_reason else "",
        criteria=criteria.label, pd_date=pd_date, burden=extra.get("burden"),
        baseline_burden=extra.get("baseline"), baseline_date=extra.get("baseline_date"),
        nadir_burden=extra.get("nadir"), nadir_date=extra.get("nadir_date"),
        change_vs_baseline=extra.get("change_vs_baseline"), change_vs_nadir=extra.get("change_vs_nadir"),
        weeks_post_rt=weeks,
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


