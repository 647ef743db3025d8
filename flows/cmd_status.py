"""`gliowatch status`: stream health and a per-patient summary from the store."""

from __future__ import annotations

import argparse

from engine.settings import Settings
from engine.store import open_store
from engine.store import ingest as sql
from engine.errors import StoreError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("status", help="stream health and per-patient summary")
    p.set_defaults(handler=run)


def open_for_reading(settings: Settings):  # noqa: ANN201 - a Store
    """The writer's file when free, else the published snapshot (a watcher holds the lock)."""
    if not settings.db_path.exists():
        return None
    try:
        return open_store(settings.db_path, read_only=True)
    except StoreError:
        if settings.snapshot_path.exists():
            return open_store(settings.snapshot_path, read_only=True)
        raise


def print_summary(store) -> None:  # noqa: ANN001
    rows = sql.patient_summary(store)
    current = None
    for r in rows:
        if r["patient_key"] != current:
            current = r["patient_key"]
            n = sum(1 for x in rows if x["patient_key"] == current)
            print(f"{current}: {n} studies")
        missing = f" (missing {r['missing_sequences']})" if r["missing_sequences"] else ""
        print(f"  {r['study_date']}  {r['status']:<12} {r['sequences'] or '-'}{missing}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = open_for_reading(settings)
    if store is None:
        print(f"No store yet at {settings.db_path}")
        return 0
    with store:
        health = sql.stream_health(store)
        print(f"cursor {health['cursor']} (updated {health['cursor_updated_at']}){_lag(settings, health['cursor'])}, "
              f"{health['queue']} studies waiting for a pipeline step, "
              f"{health['studies_last_hour']} studies in the last hour, "
              f"{health['open_quarantine']} open quarantine entries")
        print("studies by status: " + ", ".join(f"{k} {v}" for k, v in sorted(health["studies_by_status"].items())))
        if health["last_error"]:
            print(f"last error {health['last_error']['logged_at']}: {health['last_error']['message']}")
        print_summary(store)
    return 0


def _lag(settings: Settings, cursor: int) -> str:
    """How many archive changes the stream has not consumed yet (when Orthanc answers)."""
    from engine.errors import GlioWatchError
    from flows.runtime import orthanc_archive

    try:
        last = orthanc_archive(settings).last_change()
    except GlioWatchError as exc:
        return f"; archive not reachable ({exc.message})"
    return f"; archive at change {last}, lag {max(last - cursor, 0)} changes"
