"""`gliowatch demo`: the whole stream on embedded defaults, end to end, on this machine.

Starts the project's Orthanc (its own state dir under ``<state>/demo``, StableAge 5 s so the demo
does not wait a minute per study) and the dashboard first, so the stream can be watched from the
start; writes a small synthetic cohort in a child process and sends each study to Orthanc as soon
as it is written (patient by patient, in visit order) while the watcher processes each study as it
becomes stable (``flows.demo_stream``: a console line per
study, the dashboard's snapshot published each cycle); then prints a per-patient summary from
DuckDB and keeps the service and the dashboard running.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from engine import orthanc_server
from engine.settings import Settings
from flows.prefect_env import configure_prefect
from flows.runtime import Runtime, secrets_dir

if TYPE_CHECKING:
    from flows.demo_cohort import CohortWriter

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
    # the demo shows every write-back object: OHIF 3.13 draws the SR's RANO lines only where they lie
    # in one T1c image (9 of the 22 demo reports with lines: a rotated head or a sagittal 3D T1c puts
    # them across slices, SCOORD3D only), so the key image is what shows the lines for every study
    writeback = dataclasses.replace(settings.writeback, key_image=True)
    return dataclasses.replace(settings, state_dir=settings.state_dir / "demo", orthanc=orthanc,
                               watcher=watcher, alerts=alerts, writeback=writeback)


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
        n_studies, studies, writer = _cohort(rt, args)
        try:
            _stream(rt, studies, n_studies, timeout_s=args.timeout, started=started)
        finally:
            if writer is not None:
                writer.stop()
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


def _cohort(rt: Runtime, args: argparse.Namespace) -> tuple[int, Iterable[list[Path]], CohortWriter | None]:
    """The studies to stream and their patients' clinical events (imported now). A cohort kept
    from an earlier demo is read back; otherwise it is written by a child process while the
    stream runs (``flows.demo_cohort``), its events taken from the visit plans first."""
    from engine.modelling.synth.cohort import cohort_plans, cohort_visits, study_dicom_files, write_clinical_events
    from flows.cmd_events import import_events
    from flows.demo_cohort import CohortWriter

    cohort_dir = _cohort_cache(rt.settings.state_dir.parent, args)
    events = cohort_dir / "clinical_events.csv"
    writer: CohortWriter | None = None
    if (cohort_dir / "cohort.json").exists() and events.exists():
        studies: Iterable[list[Path]] = [study_dicom_files(cohort_dir, v.entry) for v in cohort_visits(cohort_dir)]
        n_studies = len(studies)  # type: ignore[arg-type]
        where = f"reused from an earlier demo (same seed, size and generator code): {cohort_dir}"
    else:
        plans = cohort_plans(n_patients=args.patients, seed=args.seed, n_visits=args.visits)
        cohort_dir.mkdir(parents=True, exist_ok=True)
        write_clinical_events(events, plans)
        writer = CohortWriter(cohort_dir, patients=args.patients, visits=args.visits, seed=args.seed).start()
        studies = writer.studies()
        n_studies = sum(len(plan.visits) for plan in plans)
        where = (f"being written study by study into {cohort_dir} while the stream runs "
                 "(kept for the next demo)")
    n_events, n_patients, _ = import_events(rt.store, events, key_salt=rt.key_salt, entered_by="demo")
    print(f"[3/6] synthetic cohort: {args.patients} patients, {n_studies} studies, {where}; {n_events} clinical "
          f"events imported for {n_patients} patients", flush=True)
    return n_studies, studies, writer


def _cohort_cache(root: Path, args: argparse.Namespace) -> Path:
    """Where the demo's cohort is kept between demos: outside the demo state that each demo wipes,
    keyed by seed, patients, visits and a digest of the generator's source, so any change to the
    generator writes a new one (cohort.json is written last: a folder without it is incomplete and
    written again)."""
    import engine.modelling.synth as synth

    digest = hashlib.sha256()
    for source in sorted(Path(synth.__file__).parent.rglob("*.py")):
        digest.update(source.read_bytes())
    return root / "demo-cohorts" / f"seed{args.seed}-{args.patients}x{args.visits}-{digest.hexdigest()[:12]}"


def _stream(rt: Runtime, studies: Iterable[list[Path]], n_studies: int, *, timeout_s: float,
            started: float) -> None:
    from flows.demo_stream import DEMO_AHEAD, PacedUploader, stream_until_done
    from flows.runtime import orthanc_archive

    sender = orthanc_archive(rt.settings)  # the uploader's own connection
    uploader = PacedUploader(studies, sender.upload_file)
    print(f"[4/6] streaming: studies go to Orthanc one by one, patient by patient in visit order (at most "
          f"{DEMO_AHEAD} waiting), each is processed once stable ...", flush=True)
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
