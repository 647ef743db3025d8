"""``gliowatch register FIXED_SERIES_DIR MOVING_SERIES_DIR --out TRANSFORM.json [--force]``.

Aligns the moving series to the fixed one and writes JSON with ``matrix`` -- a 4x4 in world
coordinates (RAS+, mm) that maps a point of the MOVING scan to the same anatomical point of the
FIXED scan (``x_fixed = matrix @ x_moving``) -- plus the QC figures. A registration that fails
its QC still writes the JSON (``"passed": false``) and exits 1 with the reason. An existing
output is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.errors import GlioWatchError
from engine.settings import Settings


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "register",
        help="align one DICOM series to another and write the transform as JSON",
        description=(
            "Register MOVING_SERIES_DIR to FIXED_SERIES_DIR (rigid, or rigid then affine with "
            "registration.stage = 'affine'). The JSON 'matrix' maps moving-scan RAS mm to "
            "fixed-scan RAS mm."
        ),
    )
    p.add_argument("fixed_dir", metavar="FIXED_SERIES_DIR", type=Path, help="folder with the fixed (reference) series")
    p.add_argument("moving_dir", metavar="MOVING_SERIES_DIR", type=Path, help="folder with the series to align")
    p.add_argument("--out", required=True, type=Path, metavar="TRANSFORM.json", help="JSON file to write")
    p.add_argument("--force", action="store_true", help="overwrite TRANSFORM.json if it exists")
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda", "sitk", "torch"),
        default=None,
        help="override registration.device (auto/torch: torch, on CUDA if present; cpu/sitk: SimpleITK)",
    )
    p.add_argument("--stage", choices=("rigid", "affine"), default=None, help="override registration.stage")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    from engine.dicom import read_series_dir
    from engine.registration import make_registrar

    out: Path = args.out
    if out.exists() and not args.force:  # fail before any slow work
        msg = f"Output file {out} already exists; it was not overwritten"
        raise GlioWatchError(msg, action="Pass --force to replace it.")
    reg_settings = settings.registration
    overrides = {k: v for k, v in (("device", args.device), ("stage", args.stage)) if v is not None}
    if overrides:
        reg_settings = dataclasses.replace(reg_settings, **overrides)
    fixed = read_series_dir(args.fixed_dir, exam=f"fixed series {args.fixed_dir}")
    moving = read_series_dir(args.moving_dir, exam=f"moving series {args.moving_dir}")
    result = make_registrar(reg_settings).register(fixed=fixed, moving=moving)
    record = {
        "fixed_series_dir": str(args.fixed_dir),
        "moving_series_dir": str(args.moving_dir),
        **result.to_dict(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}: {result.method}, {result.elapsed_s:.1f} s. {result.qc_reason}")
    if not result.passed:
        raise GlioWatchError(
            f"Registration failed its quality check; {out} was written with passed=false",
            action="Do not use this transform. Check both series (same patient, same sequence?).",
        )
    return 0
