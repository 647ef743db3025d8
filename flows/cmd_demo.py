"""`gliowatch demo`: the whole stream on embedded defaults, end to end, on this machine.

Starts the project's Orthanc (its own state dir under ``<state>/demo``, StableAge 5 s so the demo
does not wait a minute per study) and the dashboard first, so the stream can be watched from the
start; writes a small synthetic cohort, sends it to Orthanc study by study in visit order while the
watcher processes each study as it becomes stable (``flows.demo_stream``: a console line per
study, the dashboard's snapshot published each cycle); then prints a per-patient summary from
DuckDB and keeps the service and the dashboard running.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

from engine import orthanc_server
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
    started = time.monotonic()
    pid = orthanc_server.start(settings.orthanc, paths, password=password)
    print(f"[1/6] Orthanc {settings.orthanc.url} running (pid {pid}), StableAge {DEMO_STABLE_AGE_S} s; "
          f"local alert sink (HMAC-checked webhook) at {sink.url}", flush=True)

    from engine.store import publish_snapshot
    from flows.runtime import build_runtime

    rt = build_runtime(settings)
    dashboard = None
    try:
        publish_snapshot(rt.store, settings.snapshot_path)  # the dashboard has a (still empty) stream to show
        dashboard = _start_dashboard(settings, args, started)
        n_studies, manifest_path = _write_cohort(rt, args)
        _stream(rt, manifest_path, n_studies, timeout_s=args.timeout, started=started)
        _wait_for_alerts(rt, sink)
    except BaseException:
        if dashboard is not None:
            dashboard.terminate()
        sink.stop()
        raise
    finally:
        rt.close()
    _print_summary(settings)
    print(f"      the stream took {time.monotonic() - started:.0f} s from the start of the demo to this summary")
    return _serve_dashboard(settings, args, sink, dashboard)


def _start_dashboard(settings: Settings, args: argparse.Namespace, started: float):  # noqa: ANN202
    """The dashboard from the start (it reads each cycle's snapshot); a thread says when it answers."""
    from engine.auth import add_user
    from flows.cmd_dashboard import start_dashboard

    password = add_user(settings.state_dir / "users.toml", name="demo", role="radiologist", force=True)
    proc = start_dashboard(settings, port=args.port, log_path=settings.state_dir / "dashboard.log")
    url = f"http://127.0.0.1:{args.port}/"
    print(f"[2/6] dashboard starting: {url}  login: demo / {password} (page 'Stream health' follows the "
          "stream; patients appear on the worklist as their studies are processed)", flush=True)
    threading.Thread(target=_say_when_up, args=(url, proc, started), daemon=True).start()
    return proc


def _say_when_up(url: str, proc, started: float, timeout_s: float = 300.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    print(f"      dashboard is up at {url} ({time.monotonic() - started:.0f} s after the demo "
                          "started)", flush=True)
                    return
        except OSError:
            pass
        time.sleep(1)
    print(f"      the dashboard did not answer at {url} (see {proc.args} output in dashboard.log)", flush=True)


def _write_cohort(rt: Runtime, args: argparse.Namespace) -> tuple[int, Path]:
    from engine.modelling.synth import generate_cohort
    from flows.cmd_events import import_events

    cohort_dir = _cohort_cache(rt.settings.state_dir.parent, args)
    manifest_path = cohort_dir / "cohort.json"
    if manifest_path.exists() and (cohort_dir / "clinical_events.csv").exists():
        print(f"      reusing the cohort written by an earlier demo (same seed, size and generator code): "
              f"{cohort_dir}", flush=True)
    else:
        print("      writing the synthetic cohort (the longest step before the stream; kept for the next "
              "demo) ...", flush=True)
        generate_cohort(n_patients=args.patients, seed=args.seed, out_dir=cohort_dir, size="demo",
                        n_visits=args.visits, force=True)
    n_events, n_patients, _ = import_events(rt.store, cohort_dir / "clinical_events.csv",
                                            key_salt=rt.key_salt, entered_by="demo")
    manifest = json.loads(manifest_path.read_text())
    n_studies = sum(len(p["visits"]) for p in manifest["patients"])
    print(f"[3/6] synthetic cohort: {len(manifest['patients'])} patients, {n_studies} studies in "
          f"{cohort_dir}; {n_events} clinical events imported for {n_patients} patients", flush=True)
    return n_studies, manifest_path


def _cohort_cache(root: Path, args: argparse.Namespace) -> Path:
    """Where the demo's cohort is kept between demos: outside the demo state that each demo wipes,
    keyed by seed, patients, visits and a digest of the generator's source, so any change to the
    generator writes a new one (cohort.json and clinical_events.csv are written last: a folder
    without them is incomplete and written again)."""
    import engine.modelling.synth as synth

    digest = hashlib.sha256()
    for source in sorted(Path(synth.__file__).parent.rglob("*.py")):
        digest.update(source.read_bytes())
    return root / "demo-cohorts" / f"seed{args.seed}-{args.patients}x{args.visits}-{digest.hexdigest()[:12]}"


def _stream(rt: Runtime, manifest_path: Path, n_studies: int, *, timeout_s: float, started: float) -> None:
    from flows.demo_stream import DEMO_AHEAD, PacedUploader, stream_until_done, studies_in_visit_order
    from flows.runtime import orthanc_archive

    sender = orthanc_archive(rt.settings)  # the uploader's own connection
    uploader = PacedUploader(studies_in_visit_order(manifest_path), sender.upload_file)
    print(f"[4/6] streaming: studies go to Orthanc one by one in visit order (at most {DEMO_AHEAD} waiting), "
          "each is processed once stable ...", flush=True)
    uploader.start()
    try:
        cycles = stream_until_done(rt, uploader, n_studies, timeout_s=timeout_s,
                                   print_line=lambda line: print(line, flush=True))
    finally:
        uploader.stop()
    print(f"      all {n_studies} studies processed in {cycles} watch cycles, "
          f"{time.monotonic() - started:.0f} s after the demo started", flush=True)


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


def _wait_for_alerts(rt: Runtime, sink, timeout_s: float = 60.0) -> None:  # noqa: ANN001
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


def _serve_dashboard(settings: Settings, args: argparse.Namespace, sink, proc) -> int:  # noqa: ANN001
    print(f"[6/6] dashboard: http://127.0.0.1:{args.port}/  (login printed at [2/6])")
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
