"""Clinical scenarios: visit dates, phases, tumour sizes and clinical facts per patient.

Pure: a seeded :class:`numpy.random.Generator` in, a frozen :class:`PatientPlan` out. The
timeline follows the standard of care for glioblastoma (Stupp): pre-operative MRI, surgery a
few days later, post-operative MRI within 48 h, chemoradiation (60 Gy / 30 fractions over six
weeks with temozolomide) starting about four weeks after surgery, a post-radiotherapy baseline
3-5 weeks after its end, then follow-up every 6-12 weeks with adjuvant temozolomide cycles.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from engine.modelling.synth.tumour import TumourState


class Scenario(StrEnum):
    STABLE = "stable"
    PROGRESSION = "progression"
    PSEUDOPROGRESSION = "pseudoprogression"
    PARTIAL_RESPONSE = "partial_response"
    LATE_RECURRENCE = "late_recurrence"


class Phase(StrEnum):
    PRE_OP = "PRE_OP"
    POST_OP = "POST_OP"
    POST_RT = "POST_RT"
    FOLLOW_UP = "FOLLOW_UP"


class Resection(StrEnum):
    GTR = "GTR"
    STR = "STR"
    BIOPSY = "BIOPSY"


@dataclass(frozen=True, slots=True)
class VisitPlan:
    visit_index: int
    study_date: dt.date
    phase: Phase
    state: TumourState
    steroid_mg_day: float  # dexamethasone
    clinical_status: str  # improved | stable | worse


@dataclass(frozen=True, slots=True)
class PatientPlan:
    patient_id: str
    scenario: Scenario
    mgmt: str
    idh: str
    resection: Resection
    cavity_offset_mm: float
    surgery_date: dt.date
    rt_start_date: dt.date
    rt_end_date: dt.date
    visits: tuple[VisitPlan, ...]

    def chemo_cycle_dates(self) -> tuple[dt.date, ...]:
        """Adjuvant temozolomide cycles (28 days, at most 6) up to the last visit."""
        first = self.rt_end_date + dt.timedelta(days=28)
        dates = (first + dt.timedelta(days=28 * c) for c in range(6))
        return tuple(d for d in dates if d <= self.visits[-1].study_date)


#: pre-op, post-op and post-RT: the fewest visits a patient plan has (the rest are follow-ups)
MIN_VISITS = 3
_FIRST_DATE = dt.date(2024, 1, 8)
_FOLLOW_UP_GAPS_DAYS = (42, 56, 70, 84)


def plan_patient(
    *, patient_id: str, scenario: Scenario, rng: np.random.Generator, n_visits: int = 8
) -> PatientPlan:
    """Plan the visits of one patient; ``n_visits >= 3`` (pre-op, post-op, post-RT, follow-ups)."""
    if n_visits < MIN_VISITS:
        msg = f"Argument 'n_visits' must be >= {MIN_VISITS}, got {n_visits}"
        raise ValueError(msg)
    pre_op = _FIRST_DATE + dt.timedelta(days=int(rng.integers(0, 500)))
    surgery = pre_op + dt.timedelta(days=int(rng.integers(3, 11)))
    rt_start = surgery + dt.timedelta(days=int(rng.integers(26, 36)))
    rt_end = rt_start + dt.timedelta(days=41)
    dates = [pre_op, surgery + dt.timedelta(days=int(rng.integers(1, 3))),
             rt_end + dt.timedelta(days=int(rng.integers(21, 32)))]
    for m in range(1, n_visits - 2):
        gap = 42 if scenario is Scenario.PSEUDOPROGRESSION and m == 1 else int(
            rng.choice(_FOLLOW_UP_GAPS_DAYS))
        dates.append(dates[-1] + dt.timedelta(days=gap))
    resection = Resection.STR if scenario in {Scenario.PARTIAL_RESPONSE, Scenario.PROGRESSION,
                                              Scenario.STABLE} else Resection.GTR
    r0 = float(rng.uniform(15.0, 21.0))
    pre = TumourState(enhancing_radius_mm=r0, rim_mm=float(rng.uniform(2.5, 4.5)),
                      oedema_margin_mm=float(rng.uniform(12.0, 20.0)))
    cavity = r0 - (1.0 if resection is Resection.GTR else 4.0)
    states = _course(scenario=scenario, pre=pre, cavity_mm=cavity, n_follow_ups=n_visits - 3,
                     rng=rng)
    steroids, status = _clinical_course(scenario, n_visits, rng)
    phases = [Phase.PRE_OP, Phase.POST_OP, Phase.POST_RT] + [Phase.FOLLOW_UP] * (n_visits - 3)
    visits = tuple(
        VisitPlan(visit_index=i, study_date=dates[i], phase=phases[i], state=states[i],
                  steroid_mg_day=steroids[i], clinical_status=status[i])
        for i in range(n_visits)
    )
    methylated = 0.8 if scenario is Scenario.PSEUDOPROGRESSION else 0.4
    mgmt = "unknown" if rng.random() < 0.05 else (
        "methylated" if rng.random() < methylated else "unmethylated")
    idh = "mutant" if scenario is Scenario.LATE_RECURRENCE and rng.random() < 0.5 else (
        "unknown" if rng.random() < 0.05 else "wildtype")
    return PatientPlan(
        patient_id=patient_id, scenario=scenario, mgmt=mgmt, idh=idh, resection=resection,
        cavity_offset_mm=float(rng.uniform(1.0, 2.0) if resection is Resection.GTR
                               else rng.uniform(5.0, 7.0)),
        surgery_date=surgery, rt_start_date=rt_start, rt_end_date=rt_end, visits=visits,
    )


def _course(
    *, scenario: Scenario, pre: TumourState, cavity_mm: float, n_follow_ups: int,
    rng: np.random.Generator,
) -> list[TumourState]:
    """Tumour state per visit. After surgery the enhancing radius is ``cavity + h`` (residual)."""
    gtr = scenario in {Scenario.PSEUDOPROGRESSION, Scenario.LATE_RECURRENCE}
    h0 = float(rng.uniform(-1.0, 0.0)) if gtr else float(rng.uniform(0.5, 2.0))
    if scenario is Scenario.PARTIAL_RESPONSE:
        h0 = float(rng.uniform(2.0, 3.0))
    post = TumourState(enhancing_radius_mm=cavity_mm + h0, rim_mm=12.0,
                       oedema_margin_mm=pre.oedema_margin_mm * 0.6, cavity_radius_mm=cavity_mm)
    baseline = replace(post, oedema_margin_mm=pre.oedema_margin_mm * 0.45)
    states = [pre, post, baseline]
    for m in range(1, n_follow_ups + 1):
        states.append(_follow_up(scenario, baseline, m, n_follow_ups, h0, rng))
    return states


def _follow_up(
    scenario: Scenario, base: TumourState, m: int, n: int, h0: float, rng: np.random.Generator
) -> TumourState:
    cavity = base.cavity_radius_mm
    wobble = float(rng.uniform(-0.3, 0.3))
    oedema = base.oedema_margin_mm
    h = h0 + wobble
    rim = base.rim_mm
    satellite = 0.0
    if scenario is Scenario.PROGRESSION:
        growth_from = 2 if n >= 3 else 1
        steps = max(0, m - growth_from + 1)
        h = h0 + wobble + 3.5 * steps
        oedema += 2.5 * steps
        rim = 3.5 if steps else rim
        if steps and m == n and rng.random() < 0.5:
            satellite = 5.0
    elif scenario is Scenario.LATE_RECURRENCE:
        first_growth = n - 1 if n >= 4 else n  # grows over the last two (or the last) visits
        steps = max(0, m - first_growth + 1)
        h = h0 + 0.2 * wobble + 5.0 * steps  # a small residual: keep it quiet
        oedema += 3.0 * steps
        rim = 3.0 if steps else rim
    elif scenario is Scenario.PSEUDOPROGRESSION:
        bump = {1: 4.5, 2: 2.0}.get(m, -0.5)
        h = h0 + wobble * 0.3 + bump
        oedema += {1: 7.0, 2: 3.0}.get(m, 0.0)
    elif scenario is Scenario.PARTIAL_RESPONSE:
        h = max(h0 - 2.5 * m, -3.0) + wobble * 0.3
        oedema = max(oedema - 2.0 * m, 2.0)
    return TumourState(enhancing_radius_mm=max(cavity + h, 0.0), rim_mm=rim,
                       oedema_margin_mm=max(oedema, 0.0), cavity_radius_mm=cavity,
                       satellite_radius_mm=satellite)


def _clinical_course(
    scenario: Scenario, n_visits: int, rng: np.random.Generator
) -> tuple[list[float], list[str]]:
    steroids = [float(rng.choice([4.0, 8.0])), 4.0, float(rng.choice([0.0, 1.0, 2.0]))]
    status = ["worse", "improved", "stable"]
    n_fu = n_visits - 3
    for m in range(1, n_fu + 1):
        dose, state = 0.0, "stable"
        if scenario is Scenario.PSEUDOPROGRESSION and m == 1:
            dose, state = 4.0, str(rng.choice(["stable", "worse"]))
        elif scenario is Scenario.PROGRESSION and m >= (2 if n_fu >= 3 else 1):
            dose, state = (4.0, "worse") if m == n_fu else (2.0, "stable")
        elif scenario is Scenario.LATE_RECURRENCE and m == n_fu:
            dose, state = 4.0, "worse"
        elif scenario is Scenario.PARTIAL_RESPONSE and m >= 2:
            state = "improved"
        steroids.append(dose)
        status.append(state)
    return steroids[:n_visits], status[:n_visits]
