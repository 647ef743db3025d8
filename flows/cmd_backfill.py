"""`gliowatch backfill [--since DATE] [--patient KEY]`: process what is already in the archive.

Same pipeline as the live stream, idempotent (known, unchanged studies are skipped). DuckDB has
one writer: when a watcher/service holds the store, the request is queued under
``<state>/requests/`` and the running service performs it at its next cycle.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ConfigError, StoreError
from engine.settings import Settings
from flows.prefect_env import configure_prefect

if TYPE_CHECKING:
    from engine.usecases.follow_archive import CycleReport
    from flows.runtime import Runtime

QUEUE_PREFIX = "backfill-"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("backfill", help="process studies already in the archive")
    p.add_argument("--since", help="only studies on or after this date (YYYY-MM-DD)")
    p.add_argument("--patient", help="only this pseudonymous patient key (P-...)")
    p.set_defaults(handler=run)


def requests_dir(settings: Settings) -> Path:
    return settings.state_dir / "backfill-requests"


def _parse_since(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--since must be a date YYYY-MM-DD, got {text!r}") from exc


def queue_request(settings: Settings, since: date | None, patient: str | None) -> Path:
    folder = requests_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{QUEUE_PREFIX}{uuid.uuid4().hex}.json"
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"since": since.isoformat() if since else None, "patient": patient}))
    os.replace(tmp, target)
    return target


def take_requests(settings: Settings) -> list[dict]:
    """Queued backfill requests (removed as they are taken)."""
    folder = requests_dir(settings)
    out = []
    for path in sorted(folder.glob(f"{QUEUE_PREFIX}*.json")) if folder.exists() else []:
        out.append(json.loads(path.read_text()))
        path.unlink()
    return out


def backfill(rt: Runtime, *, since: date | None, patient: str | None) -> CycleReport:
    """Run one backfill in this (writer) process, through the live stream's flows."""
    from engine.pseudonym import patient_key
    from engine.usecases.follow_archive import run_backfill
    from flows.process import run_processing
    from flows.watch import ingest_study_task

    report = run_backfill(
        archive=rt.archive, store=rt.store,
        ingest=lambda sid: ingest_study_task(rt.ingest_sources, sid),
        since=since, patient_key=patient, key_of=lambda pid: patient_key(pid, salt=rt.key_salt),
    )
    run_processing(rt, report.ingested)
    return report


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = _parse_since(args.since)
    configure_prefect(settings)
    from flows.runtime import build_runtime

    try:
        rt = build_runtime(settings)
    except StoreError:
        path = queue_request(settings, since, args.patient)
        print(f"A running GlioWatch service holds the store: backfill queued ({path.name}); "
              "it runs at the service's next cycle.")
        return 0
    try:
        report = backfill(rt, since=since, patient=args.patient)
        from engine.store import publish_snapshot

        publish_snapshot(rt.store, settings.snapshot_path)
    finally:
        rt.close()
    print(f"backfill: {report.stable_seen} studies matched, {len(report.ingested)} ingested, "
          f"{len(report.quarantined)} quarantined, {report.skipped} already known")
    return 0
