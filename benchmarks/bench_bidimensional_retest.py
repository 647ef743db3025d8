"""Test–retest spread of the bidimensional measurement on synthetic repeats (issue 32).

One lesion, defined in world mm (an ellipsoid with a bump on one side, so its longest diameter is
not a symmetry axis), is rasterised again and again with a small change of pose (a rotation of up
to ``--max-rotation-deg`` about a random axis, a translation of up to ``--max-shift-mm`` per axis)
and of boundary noise (each boundary voxel flipped with probability ``--flip``), on the grid of
``--spacing`` (mm). Every repeat is measured by the product's own code (``engine.measurement.measure_study``:
slice choice, opening, d1 and the perpendicular d2). Printed per quantity: mean, SD, coefficient of
variation (CV) and the repeatability coefficient RC = 2.77 x SD (the difference between two
repeats that 95 % of pairs stay under). Baseline measured in the same run: the spread of the ET
volume of the same repeats, printed as the ratio CV(quantity) / CV(volume).

Run: ``python -m benchmarks.bench_bidimensional_retest [--repeats N] [--spacing 1,1,3] [--seed S]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
from scipy.spatial.transform import Rotation

from engine.criteria import load_criteria
from engine.measurement import measure_study
from engine.types import Label, Volume

AXES_MM = (34.0, 22.0, 16.0)  # full axes of the ellipsoid (x, y, z)
BUMP_MM = (12.0, 6.0, 0.0, 9.0)  # centre offset (x, y, z) and radius of a sphere added to it
FIELD_MM = 72.0


def lesion_mask(spacing: tuple[float, float, float], rotation: Rotation, shift_mm: np.ndarray,
                rng: np.random.Generator, flip: float) -> np.ndarray:
    """The lesion rasterised at voxel centres after the pose change, with boundary noise."""
    shape = tuple(int(FIELD_MM / s) for s in spacing)
    grid = np.stack(np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)],
                                indexing="ij"), axis=-1)
    local = rotation.inv().apply(grid.reshape(-1, 3) - shift_mm).reshape(grid.shape)  # world -> lesion frame
    ellipsoid = ((local / (np.asarray(AXES_MM) / 2)) ** 2).sum(axis=-1) <= 1.0
    bump = np.linalg.norm(local - np.asarray(BUMP_MM[:3]), axis=-1) <= BUMP_MM[3]
    mask = ellipsoid | bump
    if flip > 0:
        inner = np.zeros_like(mask)
        inner[1:-1, 1:-1, 1:-1] = (mask[1:-1, 1:-1, 1:-1] & mask[:-2, 1:-1, 1:-1] & mask[2:, 1:-1, 1:-1]
                                   & mask[1:-1, :-2, 1:-1] & mask[1:-1, 2:, 1:-1])
        boundary = mask & ~inner
        mask = mask & ~(boundary & (rng.random(mask.shape) < flip))
    return mask


def measure_repeats(*, repeats: int, spacing: tuple[float, float, float], max_rotation_deg: float,
                    max_shift_mm: float, flip: float, seed: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    criteria = load_criteria("rano2").measurability
    affine = np.diag([*spacing, 1.0])
    out: dict[str, list[float]] = {"d1_mm": [], "d2_mm": [], "product_mm2": [], "et_ml": []}
    for _ in range(repeats):
        axis = rng.normal(size=3)
        angle = np.radians(rng.uniform(0, max_rotation_deg))
        rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle)
        shift = rng.uniform(-max_shift_mm, max_shift_mm, size=3)
        labels = lesion_mask(spacing, rotation, shift, rng, flip).astype(np.uint8) * int(Label.ET)
        m = measure_study(Volume(labels, affine), criteria=criteria)
        biggest = max(m.lesions, key=lambda lesion: lesion.product_mm2)
        out["d1_mm"].append(biggest.d1_mm)
        out["d2_mm"].append(biggest.d2_mm)
        out["product_mm2"].append(biggest.product_mm2)
        out["et_ml"].append(m.volumes.et_ml)
    return out


def summary(values: dict[str, list[float]]) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for name, xs in values.items():
        mean, sd = statistics.fmean(xs), statistics.stdev(xs)
        rows.append((name, mean, sd, sd / mean, 2.77 * sd))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--spacing", default="1,1,3", help="voxel size in mm, x,y,z (z: slice)")
    parser.add_argument("--max-rotation-deg", type=float, default=3.0)
    parser.add_argument("--max-shift-mm", type=float, default=1.0)
    parser.add_argument("--flip", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=32)
    args = parser.parse_args(argv)
    spacing = tuple(float(v) for v in args.spacing.split(","))
    if len(spacing) != 3:
        msg = f"Argument '--spacing' must be three numbers, got {args.spacing!r}"
        raise SystemExit(msg)
    values = measure_repeats(repeats=args.repeats, spacing=spacing, max_rotation_deg=args.max_rotation_deg,
                             max_shift_mm=args.max_shift_mm, flip=args.flip, seed=args.seed)
    rows = summary(values)
    cv_volume = next(cv for name, _, _, cv, _ in rows if name == "et_ml")
    print(f"{args.repeats} repeats, grid {spacing} mm, rotation <= {args.max_rotation_deg} deg, shift <= "
          f"{args.max_shift_mm} mm, boundary flips {args.flip:.0%}, seed {args.seed}")
    print(f"{'quantity':<12} {'mean':>9} {'SD':>8} {'CV':>7} {'RC (2.77 SD)':>13} {'CV / CV(volume)':>16}")
    for name, mean, sd, cv, rc in rows:
        print(f"{name:<12} {mean:9.2f} {sd:8.2f} {cv:7.1%} {rc:13.2f} {cv / cv_volume:16.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
