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
from flows.runtime import Runtime, secrets_dir

DEMO_STABLE_AGE_S = 5


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the whole stream on a synthetic cohort")
    p.add_argument("--patients", type=int, default=5)
    p.add_argument("--visits", type=int, default=6)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the stream")
    p.add_argument("--keep", action="store_true", help="keep the previous demo state")
    p.add_argument("--port", type=int, default=8501, help="dashboard port (loopback)")
    p.add_argument("--no-wait", action="store_true",
                   help="exit after the summary instead of keeping the dashboard and alert sink up")
    p.set_defaults(handler=run)


def demo_settings(settings: Settings, *, port: int = 8501, webhook_url: str = "") -> Settings:
    orthanc = dataclasses.replace(settings.orthanc, stable_age_s=DEMO_STABLE_AGE_S)
    watcher = dataclasses.replace(settings.watcher, poll_interval_s=2.0)
    alerts = dataclasses.replace(settings.alerts, dashboard_base_url=f"http://127.0.0.1:{port}",
                                 sinks=("dashboard", "webhook") if webhook_url else settings.alerts.sinks,
                                 webhook_url=webhook_url or settings.alerts.webhook_url)
    return dataclasses.replace(settings, state_dir=settings.state_dir / "demo", orthanc=orthanc,
                               watcher=watcher, alerts=alerts)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.alerts.receiver import WebhookReceiver
    from engine.alerts.webhook import resolve_hmac_key
    from flows.cmd_synth import cohort_size_problem

    problem = cohort_size_problem(args.patients, args.visits)
    if problem:  # before Orthanc starts or the previous demo state is removed
        print(f"gliowatch demo: {problem}")
        return 2
    base = demo_settings(settings, port=args.port)
    paths = orthanc_server.OrthancPaths(base.orthanc_dir)
    orthanc_server.stop(paths)
    if base.state_dir.exists() and not args.keep:
        shutil.rmtree(base.state_dir)
    base.state_dir.mkdir(parents=True, exist_ok=True)
    hmac_key = resolve_hmac_key(base.alerts.hmac_key, secrets_dir(base))
    sink = WebhookReceiver(hmac_key=hmac_key, save_to=base.state_dir / "alert-sink" / "received.jsonl").start()
    settings = demo_settings(settings, port=args.port, webhook_url=sink.url)
    configure_prefect(settings)
    password = orthanc_server.resolve_password(settings.orthanc, secrets_dir(settings))
    pid = orthanc_server.start(settings.orthanc, paths, password=password)
    print(f"[1/6] Orthanc {settings.orthanc.url} running (pid {pid}), StableAge {DEMO_STABLE_AGE_S} s; "
          f"local alert sink (HMAC-checked webhook) at {sink.url}")

    from engine.modelling.synth import generate_cohort
    from flows.cmd_events import import_events
    from flows.runtime import build_runtime

    cohort_dir = settings.state_dir / "cohort"
    rt = build_runtime(settings)
    try:
        manifest_path = generate_cohort(n_patients=args.patients, seed=args.seed, out_dir=cohort_dir,
                                        size="demo", n_visits=args.visits)
        n_events, n_patients, _ = import_events(rt.store, cohort_dir / "clinical_events.csv",
                                                key_salt=rt.key_salt, entered_by="demo")
        manifest = json.loads(manifest_path.read_text())
        n_studies = sum(len(p["visits"]) for p in manifest["patients"])
        print(f"[2/6] synthetic cohort: {len(manifest['patients'])} patients, {n_studies} studies in "
              f"{cohort_dir}; {n_events} clinical events imported for {n_patients} patients")
        from engine.modelling.synth.cohort import upload_in_visit_order

        upload_in_visit_order(manifest_path, rt.archive)
        print("[3/6] uploaded to Orthanc in visit order", flush=True)
        _stream_until_done(rt, n_studies, timeout_s=args.timeout)
        _wait_for_alerts(rt, sink)
    finally:
        rt.close()
    _print_summary(settings)
    return _serve_dashboard(settings, args, sink)


def _stream_until_done(rt: Runtime, n_studies: int, *, timeout_s: float) -> None:
    from engine.store.pipeline import processed_study_count
    from flows.watch import watch_cycle

    print("[4/6] watching Orthanc until every study is stable and processed ...", flush=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        watch_cycle(rt, reconcile=True)
        done = processed_study_count(rt.store)
        print(f"      {done}/{n_studies} studies processed (assessed or quarantined)", flush=True)
        if done >= n_studies:
            return
        time.sleep(rt.settings.watcher.poll_interval_s)
    raise GlioWatchError(f"The demo stream did not finish {n_studies} studies within {timeout_s:.0f} s")


def _print_summary(settings: Settings) -> None:
    from engine.store import open_store
    from engine.store.assessment import read_evaluable_growth, read_timeline
    from flows.cmd_status import print_summary

    print("[5/6] per-patient summary from DuckDB:")
    with open_store(settings.db_path, read_only=True) as store:
        print_summary(store)
        print("\n  responses (timeline view):")
        for r in read_timeline(store.con):
            psp = f" P(PsP) {r['psp_probability']:.2f}" if r["psp_probability"] is not None else ""
            print(f"  {r['patient_key']} {r['scan_date']} {r['response']:<17} final {r['final_response']:<17}{psp}")
            print(f"      {r['reason']}")
        for r in read_evaluable_growth(store.con):
            vdt = f"VDT {r['vdt_days']:.0f} d" if r["vdt_days"] is not None else "no growth"
            print(f"  growth {r['patient_key']} {r['label']} {r['model']}: {vdt}, "
                  f"threshold crossing {r['crossing_date'] or '-'}")


def _wait_for_alerts(rt: Runtime, sink, timeout_s: float = 60.0) -> None:  # noqa: ANN001 - sink: WebhookReceiver
    """Deliver the outbox until it is empty (the demo's sink is up, so this is quick)."""
    from engine.store.alerts import count_alerts, count_pending_deliveries
    from flows.watch import deliver_alerts

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deliver_alerts(rt)
        pending = count_pending_deliveries(rt.store)
        if not pending:
            break
        time.sleep(1)
    total = count_alerts(rt.store)
    print(f"      {total} alerts raised; the local webhook sink received {len(sink.received)} "
          f"(duplicates dropped: {sink.duplicates})")


def _serve_dashboard(settings: Settings, args: argparse.Namespace, sink) -> int:  # noqa: ANN001
    from engine.auth import add_user
    from flows.cmd_dashboard import start_dashboard

    password = add_user(settings.state_dir / "users.toml", name="demo", role="radiologist", force=True)
    proc = start_dashboard(settings, port=args.port, log_path=settings.state_dir / "dashboard.log")
    print(f"[6/6] dashboard: http://127.0.0.1:{args.port}/  login: demo / {password}")
    from flows.cmd_viewer import start_viewer_if_installed  # issue 33: OHIF over Orthanc's DICOMweb

    start_viewer_if_installed(settings)
    print(f"      alerts received by the local sink: {settings.state_dir / 'alert-sink' / 'received.jsonl'}")
    print(f"      Orthanc: {settings.orthanc.url} (stop with GLIOWATCH_STATE_DIR={settings.state_dir} "
          "gliowatch orthanc stop)")
    if args.no_wait:
        proc.terminate()
        sink.stop()
        return 0
    print("      the service keeps running, so actions in the dashboard are applied; "
          "Ctrl-C stops the service, the dashboard and the sink.", flush=True)
    from flows.service import LoopOptions, run_loop

    try:  # the demo's writer: board requests, alert delivery and new studies, until the dashboard exits
        run_loop(settings, LoopOptions(stop_when=lambda: proc.poll() is not None))
    except KeyboardInterrupt:
        proc.terminate()
    finally:
        sink.stop()
    return 0
