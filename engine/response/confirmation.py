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


def ppd_step(scan: Scan, st: PatientState, drafts: dict[int, Draft], criteria: Criteria,
             mode: Mode) -> Draft | None:
    """The call on a scan after a preliminary PD; ``None`` when the scan refutes it (pseudoprogression,
    recorded on the preliminary-PD scans): the caller then gives this scan its own response category
    (CR/PR/SD), with ``st.resolved`` saying what it resolved (clinical-spec 8.5, issue 32)."""
    finding, tp, timing, burden, target = scan.finding, scan.tp, scan.timing, scan.burden, scan.target
    ppd_date, ppd = st.run_start, st.ppd_burden
    since = (tp.scan_date - ppd_date).days
    now = f"{burden_name(mode)} {format_burden(burden, mode)}"
    ppd_text = f"the preliminary-PD scan's {format_burden(ppd, mode)} ({ppd_date.isoformat()})"
    growth = (burden - ppd) / ppd if ppd > 0 else 0.0
    lesions_now = bool(tp.new_measurable_lesion or tp.nonmeasurable_progression or tp.became_measurable)
    volume_growth = None
    if st.ppd_et_ml and tp.et_ml is not None:
        volume_growth = (tp.et_ml - st.ppd_et_ml) / st.ppd_et_ml
    volume_needed = (1.0 + criteria.timing.confirm_increase) ** 1.5 - 1.0  # the 3D equivalent (spec 4.3)
    confirm = None
    emerging: tuple[float | None, float, float] = (None, 0.0, 0.0)
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
    elif st.ppd_emerging is not None and (emerging := _emerging_growth(scan, st, mode))[0] is not None:
        total_growth, total_now, total_ppd = emerging
        if total_growth >= criteria.timing.confirm_increase:
            confirm = (f"SPD including the lesions outside the baseline targets {format_burden(total_now, mode)} is "
                       f"{format_change(total_growth)} over the preliminary-PD scan's {format_burden(total_ppd, mode)} "
                       f"(confirmation needs {format_change(criteria.timing.confirm_increase)}, "
                       f"{criteria.timing.confirm_rule.value} [R])")
        elif total_now < total_ppd and target.category is not TargetCategory.PD:
            return _refuted(scan, st, drafts, criteria, f"SPD including the lesions outside the baseline targets "
                            f"{format_burden(total_now, mode)} is {format_change(total_growth)} vs the preliminary-PD "
                            f"scan's {format_burden(total_ppd, mode)} ({ppd_date.isoformat()})")
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
        where = (f"{now} is below {ppd_text}" if burden < ppd else
                 "the new or non-target disease that made the preliminary PD is no longer measurable progression")
        return _refuted(scan, st, drafts, criteria, where)
    if confirm is not None:
        run = list(st.run)
        draft = progress(st, ppd_date, f"{confirm}: PD confirmed, dated back to the preliminary PD of "
                          f"{ppd_date.isoformat()}{timing}")
        for j in run:
            drafts[j].final, drafts[j].pd_date = Response.PD, ppd_date
            drafts[j].final_reason = f"PD confirmed on {tp.scan_date.isoformat()} ({confirm}) [{criteria.label}]"
        return draft
    st.run.append(scan.index)
    if st.ppd_emerging is not None and emerging[0] is not None:
        now = f"SPD including the lesions outside the baseline targets {format_burden(emerging[1], mode)}"
        growth, ppd_text = emerging[0], f"the preliminary-PD scan's {format_burden(emerging[2], mode)}"
    return Draft(Response.PRELIM_PD, f"{now} ({format_change(growth)} vs {ppd_text}) neither confirms nor "
                  f"refutes the preliminary PD: still preliminary, re-image and consider perfusion MRI or MDT "
                  f"review{timing}")


def _emerging_growth(scan: Scan, st: PatientState, mode: Mode) -> tuple[float | None, float, float]:
    """Change of the SPD including the lesions outside the baseline targets (new, or non-measurable at
    baseline), over the preliminary-PD scan that they made: the lesions that made the PD are followed
    into its confirmation [R]."""
    total_ppd = (st.ppd_burden or 0.0) + (st.ppd_emerging or 0.0)
    if mode is not Mode.TWO_D or scan.tp.emerging_spd_mm2 is None or total_ppd <= 0:
        return None, 0.0, total_ppd
    total_now = scan.burden + scan.tp.emerging_spd_mm2
    return (total_now - total_ppd) / total_ppd, total_now, total_ppd


def _refuted(scan: Scan, st: PatientState, drafts: dict[int, Draft], criteria: Criteria, why: str) -> None:
    """The preliminary PD was pseudoprogression: its scans get that final label; this scan is not labelled
    here (the caller assesses it as any other scan, so it gets CR/PR/SD)."""
    ppd_date, scan_date = st.run_start, scan.tp.scan_date.isoformat()
    close_run(st, drafts, Response.PSEUDOPROGRESSION, f"the scan of {scan_date} did not confirm it ({why}): "
              f"pseudoprogression, the preliminary PD not confirmed (clinical-spec 8.5) [{criteria.label}]")
    if st.ppd_emerging is not None:  # the lesions stay under watch against their own smallest size
        st.emerging_nadir = scan.tp.emerging_spd_mm2 if scan.tp.emerging_spd_mm2 is not None else st.ppd_emerging
    st.phase, st.ppd_burden, st.ppd_emerging = "tracking", None, None
    st.resolved = (f"it does not confirm the preliminary PD of {ppd_date.isoformat()} ({why}), which was "
                   "therefore pseudoprogression (clinical-spec 8.5; that label is recorded on the preliminary-PD scan)")
    return None


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
