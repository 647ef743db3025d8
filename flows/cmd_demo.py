"""`gliowatch demo`: the whole stream on embedded defaults, end to end, on this machine.

Starts the project's Orthanc (its own state dir under ``<state>/demo``, StableAge 5 s so the demo
does not wait a minute per study), writes a small synthetic cohort, uploads it in visit order, and
runs the watcher until every study is processed; then prints a per-patient summary from DuckDB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time

from engine import orthanc_server
from engine.errors import GlioWatchError
from engine.settings import Settings
from flows.prefect_env import configure_prefect
from flows.runtime import secrets_dir

DEMO_STABLE_AGE_S = 5


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the whole stream on a synthetic cohort")
    p.add_argument("--patients", type=int, default=5)
    p.add_argument("--visits", type=int, default=6)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the stream")
    p.add_argument("--keep", action="store_true", help="keep the previous demo state")
    p.set_defaults(handler=run)


def demo_settings(settings: Settings) -> Settings:
    orthanc = dataclasses.replace(settings.orthanc, stable_age_s=DEMO_STABLE_AGE_S)
    watcher = dataclasses.replace(settings.watcher, poll_interval_s=2.0)
    return dataclasses.replace(settings, state_dir=settings.state_dir / "demo", orthanc=orthanc,
                               watcher=watcher)


def run(args: argparse.Namespace, settings: Settings) -> int:
    settings = demo_settings(settings)
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    orthanc_server.stop(paths)
    if settings.state_dir.exists() and not args.keep:
        shutil.rmtree(settings.state_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    configure_prefect(settings)
    password = orthanc_server.resolve_password(settings.orthanc, secrets_dir(settings))
    pid = orthanc_server.start(settings.orthanc, paths, password=password)
    print(f"[1/4] Orthanc {settings.orthanc.url} running (pid {pid}), StableAge {DEMO_STABLE_AGE_S} s")

    from engine.synth import generate_cohort
    from flows.runtime import build_runtime

    cohort_dir = settings.state_dir / "cohort"
    rt = build_runtime(settings)
    try:
        manifest_path = generate_cohort(n_patients=args.patients, seed=args.seed, out_dir=cohort_dir,
                                        size="demo", n_visits=args.visits, upload=rt.archive)
        manifest = json.loads(manifest_path.read_text())
        n_studies = sum(len(p["visits"]) for p in manifest["patients"])
        print(f"[2/4] synthetic cohort: {len(manifest['patients'])} patients, {n_studies} studies "
              f"written to {cohort_dir} and uploaded in visit order")
        _stream_until_done(rt, n_studies, timeout_s=args.timeout)
    finally:
        rt.close()
    _print_summary(settings)
    print(f"Orthanc keeps running at {settings.orthanc.url} (stop: gliowatch orthanc stop with "
          f"GLIOWATCH_STATE_DIR={settings.state_dir})")
    return 0


def _stream_until_done(rt, n_studies: int, *, timeout_s: float) -> None:  # noqa: ANN001
    from flows.watch import watch_cycle

    print("[3/4] watching Orthanc until every study is stable and processed ...", flush=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        watch_cycle(rt, reconcile=True)
        done = rt.store.query("SELECT count(*) FROM studies")[0][0]
        print(f"      {done}/{n_studies} studies in the store", flush=True)
        if done >= n_studies:
            return
        time.sleep(rt.settings.watcher.poll_interval_s)
    raise GlioWatchError(f"The demo stream did not finish {n_studies} studies within {timeout_s:.0f} s")


def _print_summary(settings: Settings) -> None:
    from engine.store import open_store
    from flows.cmd_status import print_summary

    print("[4/4] per-patient summary from DuckDB:")
    with open_store(settings.db_path, read_only=True) as store:
        print_summary(store)
