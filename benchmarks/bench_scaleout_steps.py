"""Per-study step costs of the pipeline, each step timed on its own in one process (no cluster).

GlioWatch scales out by moving segmentation and registration (the *worker* steps) to Dask
workers, while one flow process stays the only DuckDB writer (the *writer* steps: fetch from
Orthanc + decode + NIfTI + ingest commit, the segmentation and registration commits, the
patient's measurement/assessment and alert enqueue). This benchmark times each step for the
studies of a synthetic cohort (demo size), uploaded to the project's own Orthanc, with the shipped
model and the default registrar, and prints the per-step costs and their medians. These are
*per-step costs*, not a throughput: the measured studies/hour with 1 and 2 Dask workers is
``bench_scaleout``.

Run: ``python -m benchmarks.bench_scaleout_steps [--patients 1] [--visits 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_latency import PASSWORD, SALT
from benchmarks.harness import orthanc_environ, running_orthanc
from engine import pipeline
from engine.settings import load_settings
from engine.modelling.synth import generate_cohort
from engine.modelling.synth.cohort import upload_in_visit_order

SEED = 616161


def register_timed(rt: Any, registrar: Any, study_uid: str, *, reference_sequence: str) -> tuple[float, float]:
    """One study through ``register_studies`` (its registrations computed in this thread):
    (seconds in ``compute_registration``, seconds in the rest: planning and commits)."""
    from engine.types import StudyStatus
    from engine.usecases.register_study import register_studies

    spent = 0.0

    def compute(jobs):  # noqa: ANN001, ANN202 - the use case's compute, timed
        nonlocal spent
        t = time.perf_counter()
        outs = [pipeline.compute_registration(j, registrar=registrar, paths=rt.paths) for j in jobs]
        spent += time.perf_counter() - t
        return outs

    t0 = time.perf_counter()
    register_studies([study_uid], store=rt.store, ready=StudyStatus.SEGMENTED,
                     reference_sequence=reference_sequence, compute=compute)
    return spent, time.perf_counter() - t0 - spent


def measure(*, patients: int, visits: int, work: Path) -> list[dict[str, Any]]:
    from engine.criteria import Mode, load_criteria
    from engine.ingest import ingest_study
    from engine.usecases.patient_course import assess_patient_course
    from engine.usecases.segment_study import commit_segmentation, study_files
    from engine.usecases.follow_archive import run_cycle
    from flows.process import _registrar, _segmenter
    from flows.runtime import build_runtime

    settings = load_settings(environ=orthanc_environ(work / "state", password=PASSWORD,
                                                     GLIOWATCH_ORTHANC__STABLE_AGE_S="1",
                                                     GLIOWATCH_PRIVACY__KEY_SALT=SALT))
    rows: list[dict[str, Any]] = []
    with running_orthanc(settings):
        rt = build_runtime(settings)
        manifest = generate_cohort(n_patients=patients, seed=SEED, out_dir=work / "cohort", size="demo",
                                   n_visits=visits, force=True)
        upload_in_visit_order(manifest, rt.archive)
        deadline = time.monotonic() + 120
        while len(rt.archive.list_studies()) < patients * visits and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # StableAge 1 s: let every study become stable
        segmenter = _segmenter(settings.segmentation)
        registrar = _registrar(settings.registration)
        criteria = load_criteria(settings.assessment.profile)
        timings: dict[str, float] = {}

        def ingest(study_id: str):  # noqa: ANN202
            t0 = time.perf_counter()
            out = ingest_study(rt.archive, study_id, rules=rt.rules, volumes_dir=rt.volumes_dir, key_salt=rt.key_salt)
            timings[out.study_uid] = time.perf_counter() - t0
            return out

        t_cycle = time.perf_counter()
        report = run_cycle(archive=rt.archive, store=rt.store, ingest=ingest, batch_size=1000)
        cycle_s = time.perf_counter() - t_cycle
        order = rt.store.query("SELECT study_uid, patient_key FROM studies ORDER BY patient_key, study_date")
        commit_overhead = max(cycle_s - sum(timings.values()), 0.0) / max(len(order), 1)
        for study_uid, patient_key in order:
            row: dict[str, Any] = {"study_uid": study_uid, "ingest_s": timings.get(study_uid, 0.0) + commit_overhead}
            files = study_files(rt.store, study_uid)
            t0 = time.perf_counter()
            seg = pipeline.compute_segmentation(files, segmenter=segmenter, paths=rt.paths)
            row["segment_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            commit_segmentation(rt.store, files, seg)
            row["segment_commit_s"] = time.perf_counter() - t0
            row["register_s"], row["register_commit_s"] = register_timed(
                rt, registrar, study_uid, reference_sequence=settings.registration.reference)
            t0 = time.perf_counter()
            assess_patient_course(rt.store, patient_key=patient_key, criteria=criteria,
                                  mode=Mode(settings.assessment.mode), paths=rt.paths, alert_sinks=tuple(rt.sinks),
                                  base_url=settings.alerts.dashboard_base_url)
            row["assess_s"] = time.perf_counter() - t0
            row["worker_s"] = row["segment_s"] + row["register_s"]
            row["writer_s"] = row["ingest_s"] + row["segment_commit_s"] + row["register_commit_s"] + row["assess_s"]
            rows.append(row)
            print("  " + " ".join(f"{k} {v:.1f}" for k, v in row.items() if k.endswith("_s")), flush=True)
        print(f"  cycle: {report.summary()}")
        rt.close()
    return rows


def step_costs(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median of each step over the studies (seconds per study, one process, no cluster)."""
    keys = [k for k in rows[0] if k.endswith("_s")]
    medians = {k: statistics.median(r[k] for r in rows) for k in keys}
    print(f"per-step costs, median over {len(rows)} studies (one process; not a throughput):")
    for k, v in medians.items():
        print(f"  {k:<18} {v:6.2f} s")
    return medians


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_scaleout_steps")
    parser.add_argument("--patients", type=int, default=1)
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory() as tmp:
        rows = measure(patients=args.patients, visits=args.visits, work=Path(tmp))
    summary = step_costs(rows)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, default=str))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
