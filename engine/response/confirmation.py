"""Confirmation inside the temporal machine (clinical-spec 8.5): a preliminary PD confirmed,
refuted (pseudoprogression) or left open, and a first CR/PR confirmed by a scan >= 4 weeks later."""

from __future__ import annotations

from engine.criteria import ConfirmRule, Criteria, Mode
from engine.response.state import Draft, PatientState, Scan, close_run, progress
from engine.response.target import TargetCategory
from engine.response.timepoint import FindingKind
from engine.response.wording import burden_name, format_burden, format_change
from engine.types import Response

RESPONSE_LEVEL = {Response.CR: 2, Response.PR: 1}


def ppd_step(scan: Scan, st: PatientState, drafts: dict[int, Draft], criteria: Criteria, mode: Mode) -> Draft:
    finding, tp, timing, burden, target = scan.finding, scan.tp, scan.timing, scan.burden, scan.target
    ppd_date, ppd = st.run_start, st.ppd_burden
    since = (tp.scan_date - ppd_date).days
    now = f"{burden_name(mode)} {format_burden(burden, mode)}"
    ppd_text = f"the preliminary-PD scan's {format_burden(ppd, mode)} ({ppd_date.isoformat()})"
    growth = (burden - ppd) / ppd if ppd > 0 else 0.0
    lesions_now = bool(tp.new_measurable_lesion or tp.nonmeasurable_progression)
    volume_growth = None
    if st.ppd_et_ml and tp.et_ml is not None:
        volume_growth = (tp.et_ml - st.ppd_et_ml) / st.ppd_et_ml
    volume_needed = (1.0 + criteria.timing.confirm_increase) ** 1.5 - 1.0  # the 3D equivalent (spec 4.3)
    confirm = None
    if finding.kind is FindingKind.PD_HISTOLOGY:
        confirm = finding.text
    elif tp.new_measurable_lesion and not st.ppd_by_lesion:
        confirm = "a new measurable lesion"
    elif finding.with_decline or finding.kind is FindingKind.CLINICAL_PD:
        confirm = "tumour-related clinical decline"
    elif since < round(criteria.timing.confirm_interval_weeks * 7):
        st.run.append(scan.index)
        return Draft(Response.PRELIM_PD, f"{now} only {since} days after the preliminary PD of "
                      f"{ppd_date.isoformat()}; a confirmation scan needs >= "
                      f"{criteria.timing.confirm_interval_weeks:g} weeks, so it stays preliminary{timing}")
    elif st.ppd_by_lesion and lesions_now and volume_growth is not None and volume_growth >= volume_needed:
        confirm = (f"the new or non-target enhancing disease persists and the ET volume {tp.et_ml:.2f} mL is "
                   f"{format_change(volume_growth)} over the preliminary-PD scan's {st.ppd_et_ml:.2f} mL "
                   f"(confirmation needs {format_change(volume_needed)}, the volume equivalent of "
                   f"{format_change(criteria.timing.confirm_increase)})")
    elif criteria.timing.confirm_rule is ConfirmRule.PPD_PLUS_25 and growth >= criteria.timing.confirm_increase:
        confirm = (f"{now} is {format_change(growth)} over {ppd_text} (confirmation needs "
                   f"{format_change(criteria.timing.confirm_increase)})")
    elif (criteria.timing.confirm_rule is ConfirmRule.PD_PERSISTS and target.category is TargetCategory.PD
          and burden >= ppd):
        confirm = f"{target.text}, not below {ppd_text}"
    elif target.category is not TargetCategory.PD and (
            burden < ppd or (st.ppd_by_lesion and burden <= ppd and not lesions_now)):
        close_run(st, drafts, Response.PSEUDOPROGRESSION, f"the scan of {tp.scan_date.isoformat()} was not "
                   f"progressing ({target.text}): pseudoprogression [{criteria.label}]")
        st.phase, st.ppd_burden = "tracking", None
        where = (f"below {ppd_text}" if burden < ppd else
                 "and the new or non-target disease that made the preliminary PD is no longer measurable progression")
        return Draft(Response.PSEUDOPROGRESSION, f"{target.text}, {where}: the preliminary PD of "
                      f"{ppd_date.isoformat()} was pseudoprogression{timing}")
    if confirm is not None:
        run = list(st.run)
        draft = progress(st, ppd_date, f"{confirm}: PD confirmed, dated back to the preliminary PD of "
                          f"{ppd_date.isoformat()}{timing}")
        for j in run:
            drafts[j].final, drafts[j].pd_date = Response.PD, ppd_date
            drafts[j].final_reason = f"PD confirmed on {tp.scan_date.isoformat()} ({confirm}) [{criteria.label}]"
        return draft
    st.run.append(scan.index)
    return Draft(Response.PRELIM_PD, f"{now} ({format_change(growth)} vs {ppd_text}) neither confirms nor "
                  f"refutes the preliminary PD: still preliminary, re-image and consider perfusion MRI or MDT "
                  f"review{timing}")


def response_step(scan: Scan, st: PatientState, drafts: dict[int, Draft], criteria: Criteria,
                   category: Response) -> Draft:
    finding, tp, timing = scan.finding, scan.tp, scan.timing
    weeks_needed = criteria.timing.response_confirm_weeks
    if st.confirmed is not None:
        st.confirmed = category
        return Draft(category, f"{finding.text}: {category.value}, a confirmed response continuing{timing}")
    if st.pending is None:
        st.pending, st.run, st.run_start = category, [scan.index], tp.scan_date
        return Draft(category, f"{finding.text}: {category.value}, to be confirmed by a scan >= "
                      f"{weeks_needed:g} weeks later{timing}")
    first = st.run_start
    since = (tp.scan_date - first).days
    if since < round(weeks_needed * 7):
        st.run.append(scan.index)
        return Draft(category, f"{finding.text}: {category.value}, {since} days after the first response "
                      f"({first.isoformat()}), not yet the >= {weeks_needed:g} weeks that confirm it{timing}")
    kept = min((category, *(drafts[j].category for j in st.run)), key=RESPONSE_LEVEL.__getitem__)
    close_run(st, drafts, kept, f"{kept.value} confirmed by the scan of {tp.scan_date.isoformat()}, {since} days "
               f"later [{criteria.label}]")
    st.pending, st.confirmed = None, category
    return Draft(category, f"{finding.text}: {category.value}, confirming the response first seen on "
                  f"{first.isoformat()} ({since} days earlier){timing}")
