"""The state the temporal machine (``temporal.py``) carries from scan to scan, and its small moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from engine.response.inputs import Timepoint
from engine.response.target import TargetCategory, TargetResult
from engine.response.timepoint import Finding, SteroidStatus
from engine.types import Response


@dataclass(slots=True)
class Draft:
    category: Response
    reason: str
    final: Response | None = None
    final_reason: str = ""
    pd_date: date | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scan:
    """One scan being assessed, with what was computed for it."""

    index: int
    tp: Timepoint
    burden: float
    target: TargetResult
    finding: Finding
    steroids: SteroidStatus
    timing: str
    weeks: float | None
    in_window: bool
    discordance: str = ""  # non-empty: 2D and volumetric assessments disagree on progression (why)


@dataclass(slots=True)
class PatientState:
    phase: str = "pre"  # pre | tracking | ppd | watch | progressed
    baseline: float | None = None
    baseline_date: date | None = None
    baseline_steroid: float | None = None
    nadir: float | None = None
    nadir_date: date | None = None
    snfh_nadir: float | None = None
    alt_nadir: float | None = None  # the other measure's nadir (ET volume in 2D mode, SPD in 3D mode)
    alt_nadir_date: date | None = None
    previous_steroid: float | None = None
    previous_date: date | None = None
    run: list[int] = field(default_factory=list)  # scans of the open PPD / watch / response run
    run_start: date | None = None
    ppd_burden: float | None = None
    ppd_et_ml: float | None = None
    ppd_by_lesion: bool = False  # the preliminary PD came from a new lesion / non-target disease, not the SPD
    ppd_emerging: float | None = None  # products outside the baseline targets at the preliminary PD (2D)
    emerging_nadir: float | None = None  # after such a PD was pseudoprogression: their smallest sum since
    resolved: str = ""  # set by a scan that refutes a preliminary PD, for its own reason
    pending: Response | None = None  # first CR/PR awaiting confirmation
    confirmed: Response | None = None
    pd_date: date | None = None


def close_pending(st: PatientState, drafts: dict[int, Draft], why: str, label: str) -> None:
    if st.pending is None:
        return
    close_run(st, drafts, Response.SD, f"response not confirmed: {why}, so SD [{label}]")
    st.pending = None


def close_run(st: PatientState, drafts: dict[int, Draft], final: Response, reason: str) -> None:
    for j in st.run:
        drafts[j].final, drafts[j].final_reason = final, reason
    st.run, st.run_start = [], None


def open_ppd(scan: Scan, st: PatientState) -> None:
    st.phase, st.run, st.run_start, st.ppd_burden = "ppd", [scan.index], scan.tp.scan_date, scan.burden
    st.ppd_by_lesion = scan.target.category is not TargetCategory.PD
    st.ppd_et_ml = scan.tp.et_ml
    lesions = scan.tp.new_measurable_lesion or scan.tp.became_measurable
    st.ppd_emerging = scan.tp.emerging_spd_mm2 if lesions and scan.tp.emerging_spd_mm2 else None
    st.confirmed = None


def progress(st: PatientState, pd_date: date, reason: str) -> Draft:
    st.phase, st.pd_date, st.run, st.pending, st.confirmed = "progressed", pd_date, [], None, None
    return Draft(Response.PD, reason, pd_date=pd_date)


def update_nadir(tp: Timepoint, st: PatientState, burden: float, alt: float | None) -> None:
    if st.nadir is None or burden < st.nadir:
        st.nadir, st.nadir_date = burden, tp.scan_date
    if alt is not None and (st.alt_nadir is None or alt < st.alt_nadir):
        st.alt_nadir, st.alt_nadir_date = alt, tp.scan_date
    if st.emerging_nadir is not None and tp.emerging_spd_mm2 is not None:
        st.emerging_nadir = min(st.emerging_nadir, tp.emerging_spd_mm2)
    if tp.snfh_ml is not None and (st.snfh_nadir is None or tp.snfh_ml < st.snfh_nadir):
        st.snfh_nadir = tp.snfh_ml
