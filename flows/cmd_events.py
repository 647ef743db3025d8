"""`gliowatch events import CSV`: the treatment timeline (surgery, RT, chemo, steroids, ...).

The CSV's ``patient_id`` is the archive's PatientID; it is turned into the pseudonymous key with
the site secret before anything is stored. Columns: see ``engine/events.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from engine.errors import GlioWatchError
from engine.events import read_clinical_events
from engine.pseudonym import patient_key
from engine.settings import Settings
from engine.store import Store


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("events", help="import clinical events (treatment timeline) from CSV")
    sub = p.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="import a clinical-events CSV")
    imp.add_argument("csv", type=Path)
    imp.add_argument("--user", default="import", help="who entered the events (audit)")
    p.set_defaults(handler=run)


def import_events(store: Store, path: Path, *, key_salt: str, entered_by: str) -> tuple[int, int, list[str]]:
    """Import one CSV; returns (rows stored, patients, error lines). Bad rows are reported, not stored."""
    from engine.store.assessment import import_clinical_events

    events, errors = read_clinical_events(path)
    keyed = [dataclasses.replace(e, patient_id=patient_key(e.patient_id, salt=key_salt)) for e in events]
    with store.transaction() as con:
        n = import_clinical_events(con, keyed, source=path.name, entered_by=entered_by)
    return n, len({e.patient_id for e in keyed}), [str(e) for e in errors]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from flows.runtime import build_runtime

    if not args.csv.exists():
        raise GlioWatchError(f"Clinical-events file {args.csv} does not exist")
    rt = build_runtime(settings)
    try:
        n, patients, errors = import_events(rt.store, args.csv, key_salt=rt.key_salt, entered_by=args.user)
        for line in errors:
            print(f"{args.csv.name}: {line}", file=sys.stderr)
        if patients:
            from flows.prefect_env import configure_prefect

            configure_prefect(settings)
            from engine.store.pipeline import segmented_patients
            from flows.process import reassess_patients

            reassess_patients(rt, segmented_patients(rt.store))
    finally:
        rt.close()
    print(f"imported {n} events for {patients} patients ({len(errors)} rows refused)")
    return 1 if errors else 0
