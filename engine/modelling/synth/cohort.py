"""A whole synthetic cohort: patients, visits, DICOM, ground truth, cohort.json and the
clinical-events CSV; optionally uploaded to an archive in visit (date) order.

Layout under ``out_dir``::

    cohort.json
    clinical_events.csv
    GW-SYN-0001/20250103/001_t1_se_tra/IM0001.dcm ...
    GW-SYN-0001/20250103/truth/labels.nii.gz, truth.json
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.modelling.synth.anatomy import HeadModel, build_head
from engine.modelling.synth.contrast import render_normal
from engine.modelling.synth.pose import random_pose
from engine.modelling.synth.protocols import RESOLUTIONS, VENDORS, CohortSize, Vendor
from engine.modelling.synth.scenarios import PatientPlan, Scenario, plan_patient
from engine.modelling.synth.study import StudyContext, write_study
from engine.modelling.synth.tumour import TumourField, TumourGeometry, build_field, sample_geometry
from engine.types import STUDY_SEQUENCES

GENERATOR = "gliowatch-synth"
VERSION = "1.0"
DEFAULT_VISITS: dict[CohortSize, int] = {CohortSize.TEST: 3, CohortSize.DEMO: 8}
SCENARIO_ORDER: tuple[Scenario, ...] = (
    Scenario.STABLE, Scenario.PROGRESSION, Scenario.PSEUDOPROGRESSION,
    Scenario.PARTIAL_RESPONSE, Scenario.LATE_RECURRENCE,
)

log = logging.getLogger(__name__)


class Uploader(Protocol):
    """Anything with ``upload_file(path)`` (e.g. an ``engine.archive.Archive``)."""

    def upload_file(self, path: Path) -> Any: ...


def generate_cohort(
    *,
    n_patients: int,
    seed: int,
    out_dir: Path | str,
    size: str = "test",
    upload: Uploader | Callable[[Path], Any] | None = None,
    n_visits: int | None = None,
    scenarios: Iterable[Scenario | str] | None = None,
    force: bool = False,
    on_visit: Callable[[list[Path]], Any] | None = None,
) -> Path:
    """Write a cohort of ``n_patients`` into ``out_dir`` and return the path of cohort.json.

    Patient i gets scenario ``scenarios[i % len(scenarios)]`` (default: stable, progression,
    pseudoprogression, partial_response, late_recurrence). Deterministic for ``seed``.
    ``on_visit`` is called with each study's DICOM files as soon as the study is written
    (patient by patient, each in visit order), so a consumer can send it on before the rest of
    the cohort exists (the demo's stream).
    """
    cohort_size = CohortSize(size)
    if n_patients < 1:
        msg = f"Argument 'n_patients' must be >= 1, got {n_patients}"
        raise ValueError(msg)
    out = Path(out_dir)
    manifest_path = out / "cohort.json"
    if out.exists() and any(out.iterdir()) and not force:
        msg = f"Argument 'out_dir' must be empty or absent (use force=True to overwrite): {out}"
        raise FileExistsError(msg)
    out.mkdir(parents=True, exist_ok=True)
    order = tuple(Scenario(s) for s in (scenarios or SCENARIO_ORDER))
    visits_per_patient = n_visits or DEFAULT_VISITS[cohort_size]
    resolution = RESOLUTIONS[cohort_size]
    head = build_head(spacing_mm=resolution.working_mm)
    patients, plans = [], []
    for p in range(n_patients):
        model = patient_model(seed=seed, patient_index=p, scenario=order[p % len(order)],
                              n_visits=visits_per_patient, head=head)
        plan, patient_id = model.plan, model.plan.patient_id
        jitter_rng = np.random.default_rng([seed, p, 3])
        normal = {s: render_normal(head=head, sequence=s, rng=jitter_rng, jitter=0.04)
                  for s in STUDY_SEQUENCES}
        context = StudyContext(plan=plan, head=head, field=model.field, resolution=resolution,
                               seed=seed, out_dir=out, normal_images=normal)
        usual_vendor = model.usual_vendor
        visits = []
        for visit in plan.visits:
            vrng = np.random.default_rng([seed, p, visit.visit_index, 2])
            vendor = usual_vendor if vrng.random() < 0.8 else VENDORS[
                int(vrng.integers(len(VENDORS)))]
            pose = random_pose(vrng)
            visits.append(write_study(context=context, visit=visit, pose=pose, vendor=vendor,
                                      rng=vrng))
            log.info("synth: %s visit %d (%s) written", patient_id, visit.visit_index,
                     visit.phase.value)
            if on_visit is not None:
                on_visit(study_dicom_files(out, visits[-1]))
        patients.append(_patient_entry(plan, geometry_center=model.geometry.center_mm,
                                       visits=visits))
        plans.append(plan)
    manifest = {"generator": GENERATOR, "version": VERSION, "seed": seed,
                "size": cohort_size.value, "working_resolution_mm": resolution.working_mm,
                "patients": patients}
    manifest_path.write_text(json.dumps(manifest, indent=2))
    write_clinical_events(out / "clinical_events.csv", plans)
    if upload is not None:
        upload_in_visit_order(manifest_path, upload)
    return manifest_path


def study_dicom_files(cohort_dir: Path, entry: Mapping[str, Any]) -> list[Path]:
    """The DICOM files of one study of cohort.json (``entry``), series by series."""
    return [path for series in entry["series"] for path in sorted((cohort_dir / series["dir"]).glob("*.dcm"))]


def cohort_plans(*, n_patients: int, seed: int, n_visits: int,
                 scenarios: Iterable[Scenario | str] | None = None) -> list[PatientPlan]:
    """The visit plans of the cohort :func:`generate_cohort` writes for the same arguments,
    without its images: the plan is the first draw of each patient's generator, so it is the
    same plan (and the same clinical events) at a fraction of the cost."""
    order = tuple(Scenario(s) for s in (scenarios or SCENARIO_ORDER))
    return [plan_patient(patient_id=_patient_id(p), scenario=order[p % len(order)],
                         rng=np.random.default_rng([seed, p, 1]), n_visits=n_visits)
            for p in range(n_patients)]


def _patient_id(patient_index: int) -> str:
    return f"GW-SYN-{patient_index + 1:04d}"


@dataclass(frozen=True, slots=True)
class CohortVisit:
    """One study of a written cohort, as its cohort.json entry describes it."""

    cohort_dir: Path
    patient_index: int
    visit_index: int
    scenario: str
    entry: Mapping[str, Any]

    @property
    def study(self) -> str:
        """``PATIENT/DATE``, the study's folder relative to the cohort."""
        return str(self.entry["dir"])

    @property
    def phase(self) -> str:
        return str(self.entry["phase"])

    @property
    def truth_labels(self) -> Path:
        return self.cohort_dir / self.entry["truth"]["labels"]

    @property
    def true_ml(self) -> dict[str, float]:
        return dict(self.entry["truth"]["volumes_ml"])

    def dicom_files(self) -> list[Path]:
        """The files of the study's DICOM series (the truth folder beside them left out)."""
        return sorted(p for series in self.entry["series"] for p in (self.cohort_dir / series["dir"]).iterdir()
                      if p.is_file() and not p.name.startswith("."))


def cohort_visits(cohort_dir: Path | str) -> Iterator[CohortVisit]:
    """Every study of the cohort written in ``cohort_dir``, patient by patient, in visit order."""
    cohort_dir = Path(cohort_dir)
    manifest = json.loads((cohort_dir / "cohort.json").read_text())
    for patient_index, patient in enumerate(manifest["patients"]):
        for visit_index, entry in enumerate(patient["visits"]):
            yield CohortVisit(cohort_dir, patient_index, visit_index, str(patient.get("scenario", "?")), entry)


@dataclass(frozen=True, slots=True, eq=False)
class PatientModel:
    """One patient as the generator sees it (plan, tumour, usual scanner)."""

    plan: PatientPlan
    geometry: TumourGeometry
    field: TumourField
    usual_vendor: Vendor


def patient_model(
    *, seed: int, patient_index: int, scenario: Scenario, n_visits: int, head: HeadModel
) -> PatientModel:
    """Rebuild patient ``patient_index`` of the cohort of ``seed`` (tests use it as truth)."""
    rng = np.random.default_rng([seed, patient_index, 1])
    plan = plan_patient(patient_id=_patient_id(patient_index), scenario=scenario,
                        rng=rng, n_visits=n_visits)
    geometry = sample_geometry(head, rng, cavity_offset_mm=plan.cavity_offset_mm)
    vendor = VENDORS[int(rng.integers(len(VENDORS)))]
    return PatientModel(plan=plan, geometry=geometry, field=build_field(head, geometry),
                        usual_vendor=vendor)


def _patient_entry(plan: PatientPlan, *, geometry_center: tuple[float, float, float],
                   visits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "patient_id": plan.patient_id, "scenario": plan.scenario.value, "mgmt": plan.mgmt,
        "idh": plan.idh, "resection": plan.resection.value,
        "surgery_date": plan.surgery_date.isoformat(),
        "rt_start_date": plan.rt_start_date.isoformat(),
        "rt_end_date": plan.rt_end_date.isoformat(),
        "tumour_center_template_mm": list(geometry_center),
        "visits": visits,
    }


def clinical_events(plan: PatientPlan) -> list[tuple[str, str, str, str]]:
    """Rows ``(patient_id, event_date, event, value)`` of one patient, in date order."""
    pid = plan.patient_id
    rows = [
        (pid, plan.surgery_date.isoformat(), "SURGERY", plan.resection.value),
        (pid, plan.surgery_date.isoformat(), "MGMT", plan.mgmt),
        (pid, plan.surgery_date.isoformat(), "IDH", plan.idh),
        (pid, plan.rt_start_date.isoformat(), "RT_START", "60 Gy / 30 fx"),
        (pid, plan.rt_start_date.isoformat(), "CHEMO_START", "TMZ"),
        (pid, plan.rt_end_date.isoformat(), "RT_END", "60 Gy / 30 fx"),
    ]
    for cycle, date in enumerate(plan.chemo_cycle_dates(), start=1):
        rows.append((pid, date.isoformat(), "CHEMO_CYCLE", f"TMZ C{cycle}"))
    for visit in plan.visits:
        day = visit.study_date.isoformat()
        rows.append((pid, day, "STEROID_DOSE", f"{visit.steroid_mg_day:g}"))
        rows.append((pid, day, "CLINICAL_STATUS", visit.clinical_status))
    return sorted(rows, key=lambda r: r[1])


def write_clinical_events(path: Path, plans: Iterable[PatientPlan]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["patient_id", "event_date", "event", "value"])
        for plan in plans:
            writer.writerows(clinical_events(plan))


def upload_in_visit_order(manifest_path: Path, upload: Uploader | Callable[[Path], Any]) -> int:
    """Send every DICOM file of the cohort, study by study in date order; return the count."""
    send = upload.upload_file if hasattr(upload, "upload_file") else upload
    root = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    studies = sorted(
        ((v["study_date"], p["patient_id"], v) for p in manifest["patients"] for v in p["visits"]),
        key=lambda t: (t[0], t[1]),
    )
    count = 0
    for _, _, visit in studies:
        for series in visit["series"]:
            for path in sorted((root / series["dir"]).glob("*.dcm")):
                send(path)  # type: ignore[operator]
                count += 1
    return count
