"""Where a study's processing time goes: each step timed, the whole profiled, and the same studies
through the real Prefect flow, one study per flow run as the live stream runs them.

Cohort: 1 synthetic patient, ``--size`` (demo by default), ``--visits`` timepoints, ingested from a folder (no
Orthanc). Part A runs the steps directly in one thread under cProfile (segmentation, registration
+ commits, the patient's reassessment, in date order, so the reassessment sees 1, 2, ... N
timepoints). Part B copies the same ingested state and runs ``flows.process.run_processing`` per
study (thread task runner): the difference per study is the orchestration (Prefect flow and task
runs, futures) on top of the steps. Not a benchmark with a baseline: a profile for deciding what
to change. Run: ``python -m benchmarks.profile_processing [--visits 5] [--top 30]``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_scaleout import _ingest, _settings
from benchmarks.bench_scaleout_steps import register_timed

SEED = 727272


def steps(settings: Any, uids: list[str]) -> list[dict[str, float]]:
    from engine import pipeline
    from engine.criteria import Mode, load_criteria
    from engine.usecases.patient_course import assess_patient_course
    from engine.usecases.segment_study import commit_segmentation, study_files
    from engine.store.pipeline import study_row
    from flows.process import _registrar, _segmenter
    from flows.runtime import build_runtime

    rt = build_runtime(settings)
    segmenter, registrar = _segmenter(settings.segmentation), _registrar(settings.registration)
    criteria = load_criteria(settings.assessment.profile)
    rows = []
    try:
        for uid in uids:
            row: dict[str, float] = {}
            files = study_files(rt.store, uid)
            t0 = time.perf_counter()
            seg = pipeline.compute_segmentation(files, segmenter=segmenter, paths=rt.paths)
            t1 = time.perf_counter()
            commit_segmentation(rt.store, files, seg)
            t2 = time.perf_counter()
            row.update(segment=t1 - t0, segment_commit=t2 - t1)
            row["register"], row["register_commit"] = register_timed(
                rt, registrar, uid, reference_sequence=settings.registration.reference)
            t0 = time.perf_counter()
            assess_patient_course(rt.store, patient_key=study_row(rt.store, uid)["patient_key"], criteria=criteria,
                                  mode=Mode(settings.assessment.mode), paths=rt.paths, alert_sinks=tuple(rt.sinks),
                                  base_url=settings.alerts.dashboard_base_url)
            row["reassess"] = time.perf_counter() - t0
            rows.append(row)
    finally:
        rt.close()
    return rows


def through_flow(settings: Any, uids: list[str]) -> list[float]:
    from flows.process import run_processing
    from flows.runtime import build_runtime

    rt = build_runtime(settings)
    out = []
    try:
        for uid in uids:
            t0 = time.perf_counter()
            run_processing(rt, [uid])
            out.append(time.perf_counter() - t0)
    finally:
        rt.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="profile_processing")
    parser.add_argument("--visits", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--size", choices=("test", "demo"), default="demo")
    args = parser.parse_args(argv or [])
    from engine.modelling.synth import generate_cohort
    from flows.prefect_env import configure_prefect

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate_cohort(n_patients=1, seed=SEED, out_dir=work / "cohort", size=args.size, n_visits=args.visits)
        base = _settings(work / "base")
        configure_prefect(base)  # before Prefect is imported
        from prefect import flow

        flow(name="profile-warm-up")(lambda: None)()
        uids, ingest_s = _ingest(base, work / "cohort")
        print(f"{len(uids)} studies of one patient ingested in {ingest_s:.1f} s", flush=True)
        shutil.copytree(base.state_dir, work / "flow", ignore=shutil.ignore_patterns("prefect", "*.wal"))
        profile = cProfile.Profile()
        profile.enable()
        rows = steps(base, uids)
        profile.disable()
        flow_s = through_flow(_settings(work / "flow"), uids)
    print("per study (s), in date order; reassess = the whole course of the patient so far:")
    print("  tp  segment  seg_commit  register  reg_commit  reassess  | steps sum | Prefect flow run | overhead")
    for i, (row, f) in enumerate(zip(rows, flow_s, strict=True), start=1):
        total = sum(row.values())
        print(f"  {i:>2}  {row['segment']:7.2f}  {row['segment_commit']:10.2f}  {row['register']:8.2f}  "
              f"{row['register_commit']:10.2f}  {row['reassess']:8.2f}  | {total:9.2f} | {f:16.2f} | {f - total:8.2f}")
    for key in ("cumulative", "tottime"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats(key).print_stats(args.top)
        print(f"\n== cProfile of part A, by {key} (top {args.top}) ==")
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:12000])


if __name__ == "__main__":
    main(sys.argv[1:])
