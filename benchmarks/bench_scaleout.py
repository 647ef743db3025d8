"""Studies/hour of the real pipeline on a Dask cluster of 1 and of 2 worker processes, measured.

The production scale-out (docs/ARCHITECTURE.md, Scale-out): segmentation and registration run on
Dask workers through prefect-dask (``GLIOWATCH_TASK_RUNNER=dask://host:port``), the flow process
stays the only DuckDB writer (commits, measurement, assessment, alerts). Here the cluster is a
``distributed.LocalCluster`` of N worker processes (1 thread each) on this machine, N = 1 (the
baseline) and N = 2, in one run, on the same cohort (synthetic, ``--size``, demo by default): it is ingested
once (FolderArchive: the same fetch-free start for both), its state copied, and
``flows.process.run_processing`` (the real Prefect flow: segment, register, reassess) timed from
submission to the last assessment committed. Prefect's ephemeral server and the workers' imports
are warmed first (a long-running service pays them once, not per study); the model is loaded by
each worker on its first task, inside the timing.

Run: ``python -m benchmarks.bench_scaleout [--patients 2] [--visits 3] [--size demo|test] [--workers 1 2]
[--json F]``.
Per-step costs without a cluster: ``bench_scaleout_steps``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

from engine.settings import Settings, load_settings

SEED = 616161
SALT = "bench-scaleout-salt"


def _settings(state: Path) -> Settings:
    return load_settings(environ={"GLIOWATCH_STATE_DIR": str(state), "GLIOWATCH_PRIVACY__KEY_SALT": SALT,
                                  "GLIOWATCH_ORTHANC__PASSWORD": "unused",
                                  # a folder cohort has no archive to write results back into
                                  "GLIOWATCH_WRITEBACK__ENABLED": "false"})


def _ingest(settings: Settings, cohort: Path) -> tuple[list[str], float]:
    from engine.archive.folder import FolderArchive
    from engine.ingest import ingest_study
    from engine.usecases.follow_archive import run_cycle
    from flows.runtime import build_runtime

    rt = build_runtime(settings, archive=FolderArchive(cohort))
    try:
        t0 = time.perf_counter()
        run_cycle(archive=rt.archive, store=rt.store, batch_size=1000,
                  ingest=lambda sid: ingest_study(rt.archive, sid, rules=rt.rules, volumes_dir=rt.volumes_dir,
                                                  key_salt=rt.key_salt))
        elapsed = time.perf_counter() - t0
        uids = [r[0] for r in rt.store.query("SELECT study_uid FROM studies WHERE status = 'INGESTED' "
                                             "ORDER BY study_date")]
    finally:
        rt.close()
    return uids, elapsed


def _warm_worker() -> None:
    import flows.process  # noqa: F401 - torch, MONAI, SimpleITK, the pipeline


def _process_on_cluster(settings: Settings, uids: list[str], n_workers: int) -> dict[str, Any]:
    import distributed

    from flows.process import run_processing
    from flows.runtime import build_runtime

    with distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        client.run(_warm_worker)
        on_dask = dataclasses.replace(settings, task_runner=f"dask://{cluster.scheduler_address.removeprefix('tcp://')}")
        rt = build_runtime(on_dask)
        try:
            with distributed.get_task_stream(client) as stream:
                t0 = time.perf_counter()
                run_processing(rt, uids)
                wall = time.perf_counter() - t0
            statuses = dict(rt.store.query("SELECT study_uid, status FROM studies"))
        finally:
            rt.close()
    workers = {t["worker"] for t in stream.data}
    assessed = sum(1 for s in statuses.values() if s == "ASSESSED")
    return {"workers": n_workers, "workers_used": len(workers), "studies": len(uids), "assessed": assessed,
            "wall_s": wall, "studies_per_hour": 3600.0 * len(uids) / wall}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_scaleout")
    parser.add_argument("--patients", type=int, default=2)
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", choices=("test", "demo"), default="demo")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv or [])
    from engine.modelling.synth import generate_cohort
    from flows.prefect_env import configure_prefect

    # worker processes are spawned and re-import the parent's __main__: give them an empty one
    sys.modules.setdefault("__mp_main__", types.ModuleType("__mp_main__"))
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cohort = work / "cohort"
        generate_cohort(n_patients=args.patients, seed=SEED, out_dir=cohort, size=args.size, n_visits=args.visits)
        base = _settings(work / "base")
        configure_prefect(base)  # before Prefect is imported: it reads its settings once
        from prefect import flow

        flow(name="bench-warm-up")(lambda: None)()  # start Prefect's ephemeral server outside the timing
        uids, ingest_s = _ingest(base, cohort)
        print(f"cohort: {args.patients} patients x {args.visits} visits = {len(uids)} studies ({args.size} size), "
              f"ingested once in {ingest_s:.1f} s (not in the figures below)", flush=True)
        for n in args.workers:
            state = work / f"workers-{n}"
            shutil.copytree(base.state_dir, state, ignore=shutil.ignore_patterns("prefect", "*.wal"))
            row = _process_on_cluster(_settings(state), uids, n)
            results.append(row)
            print(f"  {n} worker process(es): {row['wall_s']:.1f} s for {row['studies']} studies "
                  f"({row['assessed']} assessed, {row['workers_used']} workers ran tasks) = "
                  f"{row['studies_per_hour']:.0f} studies/hour", flush=True)
    first = results[0]
    for row in results[1:]:
        print(f"ratio {row['workers']} vs {first['workers']} worker(s): "
              f"{row['studies_per_hour'] / first['studies_per_hour']:.2f}x studies/hour (measured, same run)")
    summary = {"ingest_s": ingest_s, "runs": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
