"""`gliowatch export PATIENT_KEY --out DIR [--all] [--force]`: the patient's DICOM SEG and SR
objects and key images (the ones written back into the archive) as files, for sending to another PACS.

Files are copied from ``<state>/writeback`` (kept by the write-back step), named
``<scan date>_<SEG|SR|SC>_<series UID>.dcm``; current objects only unless ``--all`` (superseded ones
too). An existing file is not overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from engine.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="a patient's SEG, SR and key image objects as DICOM files")
    p.add_argument("patient_key", metavar="PATIENT_KEY", help="the pseudonymous key, e.g. P-1a2b3c4d5e")
    p.add_argument("--out", required=True, type=Path, help="folder to write the files into")
    p.add_argument("--all", action="store_true", help="superseded objects too")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.store import writeback as writeback_sql
    from flows.cmd_status import open_for_reading

    store = open_for_reading(settings)
    if store is None:
        print(f"No store yet at {settings.db_path}")
        return 1
    with store:
        rows = writeback_sql.patient_objects(store, args.patient_key, current_only=not args.all)
    if not rows:
        print(f"No SEG, SR or key image written back for {args.patient_key}")
        return 1
    targets = [(settings.writeback_dir / r["file_path"],
                args.out / f"{r['study_date'] or 'undated'}_{r['kind']}_{r['series_uid']}.dcm") for r in rows]
    missing = [str(src) for src, _ in targets if not src.is_file()]
    if missing:
        print(f"{len(missing)} written file(s) are missing under {settings.writeback_dir}: {missing[0]} ...")
        return 1
    existing = [str(dst) for _, dst in targets if dst.exists()]
    if existing and not args.force:
        print(f"{len(existing)} file(s) exist already (e.g. {existing[0]}); use --force to overwrite")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for src, dst in targets:
        shutil.copyfile(src, dst)
    print(f"exported {len(targets)} object(s) of {args.patient_key} to {args.out}")
    return 0
