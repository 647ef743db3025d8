"""``gliowatch convert DICOM_DIR OUT.nii.gz [--force]``: one DICOM series to NIfTI (like dcm2niix).

Refuses (exit 1, with the reason) gantry tilt, missing slices, inconsistent spacing, mixed
orientations and anything that is not one regular volume; never overwrites without ``--force``.
Non-image objects in the folder (raw data, presentation states, SR, ...) are left out and named.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, GlioWatchError
from engine.settings import Settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "convert",
        help="convert one DICOM series folder to a NIfTI volume",
        description=(
            "Convert the DICOM series in DICOM_DIR to a NIfTI file (RAS+ affine, array indexed "
            "[column, row, slice]). Series that are not one regular 3D volume are refused."
        ),
    )
    p.add_argument("dicom_dir", metavar="DICOM_DIR", type=Path, help="folder with one series")
    p.add_argument("output", metavar="OUT.nii.gz", type=Path, help="NIfTI file to write")
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.add_argument(
        "--min-slices",
        type=int,
        default=None,
        help="accept series with at least this many slices (default 3; 1 accepts 2D images)",
    )
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.dicom.nifti import write_nifti
    from engine.dicom.sop_classes import describe_ignored
    from engine.dicom.volume import DEFAULT_MIN_SLICES, read_series_dir
    from engine.series_rules import classify_series, load_series_rules

    output: Path = args.output
    if output.exists() and not args.force:  # fail before reading a large series
        msg = f"Output file {output} already exists; it was not overwritten"
        raise GlioWatchError(msg, action="Pass --force to replace it.")
    min_slices = args.min_slices if args.min_slices is not None else DEFAULT_MIN_SLICES
    volume = read_series_dir(args.dicom_dir, min_slices=min_slices)
    write_nifti(volume, output, force=args.force)
    meta = volume.metadata
    spacing = " x ".join(f"{v:.3g}" for v in meta["spacing_mm"])
    shape = " x ".join(str(n) for n in meta["shape"])
    print(
        f"wrote {output}: {shape} voxels of {spacing} mm, {meta['acquisition_plane']}, "
        f"{meta['instance_count']} images ({meta['transfer_syntax']})"
    )
    if meta["ignored_objects"]:
        print(f"left out: {describe_ignored(meta['ignored_objects'])} (not images)")
    try:  # the conversion stands even when the rules file is broken
        series_class = classify_series(meta["header"], load_series_rules(settings.series_rules))
    except ConfigError as exc:
        print(f"sequence: not classified ({exc.message})", file=sys.stderr)
    else:
        print(f"sequence: {series_class.explanation}")
    return 0
