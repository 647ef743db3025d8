"""End-to-end latency per study with real processes, against Orthanc's StableStudy as the floor.

Set-up (everything real, on loopback): the project's own Orthanc on free ports, a local HMAC
webhook sink, and `gliowatch watch` as a subprocess with segmentation (the shipped model),
registration, assessment and alert delivery on. The visits of one synthetic patient
(``engine.modelling.synth.generate_cohort``, progression scenario, demo size: 1 mm sagittal and 3-5 mm axial
series; 6 visits by default: pre-op, post-op, post-RT baseline and three follow-ups, of which the
second grows past the PD threshold, so a PD alert is raised), with the cohort's clinical events
(surgery, RT end) imported before the watcher starts as ``gliowatch demo`` does, are uploaded one
study at a time; the next study is uploaded only
when the previous one is assessed, so each study's figures are its own and not queueing behind
another. ``tests/integration/test_latency_proof.py`` (slow) runs this script as a proof.

Per study:

* **floor** (the named baseline, measured here): last instance stored -> Orthanc's StableStudy
  change for it (a thread of this benchmark polls ``/changes`` every 0.1 s). No watcher can start
  before this; it is Orthanc's StableAge plus Orthanc's own check period.
* **processing**: StableStudy seen by the watcher (``studies.seen_at``) -> the study's first
  assessment committed (its ``assessments.assessed_at`` as first published in the snapshot; later
  studies of the patient re-assess it and overwrite that column, so it is read as it appears).
* **end to end**: last instance stored -> assessment committed, and -> alert received by the sink
  for studies that raise one.

Ratios printed: end-to-end / floor. Times come from one clock (UTC); DuckDB rows are read after
the watcher stopped. Run: ``python -m benchmarks.bench_latency [--visits 6] [--stable-age 5]
[--json out.json]``. On the GPU machine the same script measures the GPU figures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import orthanc_environ, running_orthanc
from engine.alerts.receiver import WebhookReceiver
from engine.archive.orthanc import OrthancArchive
from engine.settings import PROJECT_ROOT, load_settings
from engine.store import open_store
from engine.modelling.synth import generate_cohort
from flows.cmd_events import import_events

SEED = 515151
PASSWORD = "bench-latency"
SALT = "bench-latency-salt"
HMAC_KEY = "bench-latency-hmac-key-0123456789abcdef"


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class StableWatch:
    """Polls Orthanc's change feed; records when each study's StableStudy change appears."""

    def __init__(self, archive: OrthancArchive) -> None:
        self.archive = archive
        self.stable_at: dict[str, datetime] = {}
        self._since = archive.last_change()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StableWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self.archive.changes(since=self._since, limit=100)
            now = _utc_now()
            for change in batch.changes:
                if change.change_type == "StableStudy":
                    uid = self.archive.study(change.resource_id).study_uid
                    self.stable_at.setdefault(uid, now)
            self._since = batch.last
            self._stop.wait(0.1)


def _snapshot_assessed_at(snapshot: Path, study_uid: str) -> datetime | None:
    """When the study's assessment was committed, as the published snapshot holds it (None: not yet)."""
    if not snapshot.exists():
        return None
    try:
        with open_store(snapshot, read_only=True) as store:
            return store.query("SELECT min(assessed_at) FROM assessments WHERE study_uid = ?", [study_uid])[0][0]
    except Exception:  # noqa: BLE001 - replaced while we opened it: ask again
        return None


def run(*, visits: int, stable_age_s: int, work: Path, timeout_s: float = 900.0) -> dict[str, Any]:
    state = work / "state"
    env_settings = orthanc_environ(state, password=PASSWORD,
                                   GLIOWATCH_ORTHANC__STABLE_AGE_S=str(stable_age_s),
                                   GLIOWATCH_PRIVACY__KEY_SALT=SALT,
                                   GLIOWATCH_WATCHER__POLL_INTERVAL_S="1",
                                   GLIOWATCH_ALERTS__HMAC_KEY=HMAC_KEY)
    settings = load_settings(environ=env_settings)
    with running_orthanc(settings):
        received_at: dict[int, datetime] = {}
        sink = WebhookReceiver(hmac_key=HMAC_KEY, on_alert=lambda a: received_at.setdefault(int(a["alert_id"]), _utc_now()))
        sink.start()
        watcher = None
        try:
            archive = OrthancArchive(settings.orthanc.url, username=settings.orthanc.username, password=PASSWORD)
            manifest = json.loads(generate_cohort(n_patients=1, seed=SEED, out_dir=work / "cohort", size="demo",
                                                  n_visits=visits, scenarios=["progression"], force=True).read_text())
            with open_store(settings.db_path) as store:  # the treatment timeline, as a site enters it
                import_events(store, work / "cohort" / "clinical_events.csv", key_salt=SALT, entered_by="bench")
            env = {**os.environ, **env_settings, "GLIOWATCH_ALERTS__SINKS": "dashboard,webhook",
                   "GLIOWATCH_ALERTS__WEBHOOK_URL": sink.url, "GLIOWATCH_ALERTS__BACKOFF_BASE_S": "1",
                   "PREFECT_HOME": str(work / "prefect"), "PYTHONUNBUFFERED": "1"}
            log = (work / "watcher.log").open("w")
            watcher = subprocess.Popen([sys.executable, "-m", "flows.cli", "watch"], env=env, cwd=PROJECT_ROOT,  # noqa: S603
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            stable = StableWatch(archive).start()
            uploads: dict[str, datetime] = {}
            first_assessed: dict[str, datetime] = {}
            for visit in manifest["patients"][0]["visits"]:
                files = [p for s in visit["series"] for p in sorted((work / "cohort" / s["dir"]).glob("*.dcm"))]
                for path in files:
                    archive.upload_file(path)
                uploads[visit["study_uid"]] = _utc_now()
                deadline = time.monotonic() + timeout_s
                while (at := _snapshot_assessed_at(settings.snapshot_path, visit["study_uid"])) is None:
                    if watcher.poll() is not None:
                        raise RuntimeError(f"the watcher exited: see {work / 'watcher.log'}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"study {visit['dir']} not assessed within {timeout_s:.0f} s")
                    time.sleep(0.5)
                first_assessed[visit["study_uid"]] = at
                print(f"  {visit['dir']}: assessed", flush=True)
            time.sleep(5)  # the cycle that assessed the last study delivers its alerts before the snapshot
            stable.stop()
        finally:
            if watcher is not None:
                os.killpg(watcher.pid, signal.SIGTERM)
                try:
                    watcher.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(watcher.pid, signal.SIGKILL)
            sink.stop()
    with open_store(settings.db_path, read_only=True) as store:
        seen = dict(store.query("SELECT study_uid, seen_at FROM studies"))
        alerts = store.query("SELECT alert_id, study_uid, alert_type FROM alerts")
        responses = dict(store.query("SELECT study_uid, final_response FROM assessments WHERE profile = 'rano2' "
                                     "AND mode = '2d'"))
    rows = []
    for uid, uploaded in uploads.items():
        row: dict[str, Any] = {"study_uid": uid}
        row["floor_s"] = (stable.stable_at[uid] - uploaded).total_seconds() if uid in stable.stable_at else None
        row["processing_s"] = (first_assessed[uid] - seen[uid]).total_seconds()
        row["end_to_end_assessed_s"] = (first_assessed[uid] - uploaded).total_seconds()
        row["rano2_2d"] = responses.get(uid)
        study_alerts = [(a, t) for a, u, t in alerts if u == uid and a in received_at]
        if study_alerts:
            row["alerts"] = [t for _, t in study_alerts]
            row["end_to_end_alert_s"] = min((received_at[a] - uploaded).total_seconds() for a, _ in study_alerts)
        rows.append(row)
    return {"stable_age_s": stable_age_s, "visits": visits, "rows": rows,
            "alerts_raised": len(alerts), "alerts_received": len(received_at), "duplicates_at_sink": sink.duplicates}


def report(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    for r in rows:
        print(f"  floor {r['floor_s']:.1f} s  processing {r['processing_s']:.1f} s  "
              f"last instance -> assessed {r['end_to_end_assessed_s']:.1f} s  RANO 2.0 {r.get('rano2_2d')}"
              + (f"  -> alert {r['end_to_end_alert_s']:.1f} s {r['alerts']}" if "end_to_end_alert_s" in r else ""))
    floor = statistics.median(r["floor_s"] for r in rows if r["floor_s"] is not None)
    proc = [r["processing_s"] for r in rows]
    e2e = [r["end_to_end_assessed_s"] for r in rows]
    alert = [r["end_to_end_alert_s"] for r in rows if "end_to_end_alert_s" in r]
    out = {"floor_median_s": floor, "processing_median_s": statistics.median(proc), "processing_max_s": max(proc),
           "end_to_end_assessed_median_s": statistics.median(e2e),
           "end_to_end_alert_median_s": statistics.median(alert) if alert else None,
           "ratio_end_to_end_over_floor": statistics.median(e2e) / floor if floor else None}
    print(f"StableAge {result['stable_age_s']} s; floor (last instance -> StableStudy) median {floor:.1f} s")
    print(f"processing (StableStudy seen -> assessed): median {out['processing_median_s']:.1f} s, max {max(proc):.1f} s")
    print(f"last instance -> assessed: median {out['end_to_end_assessed_median_s']:.1f} s = "
          f"{out['ratio_end_to_end_over_floor']:.2f}x the floor")
    if alert:
        print(f"last instance -> alert received: median {out['end_to_end_alert_median_s']:.1f} s (n={len(alert)})")
    print(f"alerts raised {result['alerts_raised']}, received {result['alerts_received']}, "
          f"duplicates at the sink {result['duplicates_at_sink']}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_latency")
    parser.add_argument("--visits", type=int, default=6)
    parser.add_argument("--stable-age", type=int, default=5, help="Orthanc StableAge in seconds (default 5)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(visits=args.visits, stable_age_s=args.stable_age, work=work)
    summary = report(result)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, **result}, indent=1, default=str))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
