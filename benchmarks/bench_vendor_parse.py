"""Parse + assemble real vendor series from bytes: GlioWatch's reader against pydicom alone, one run.

Baseline: every instance read by ``pydicom.dcmread`` then ``assemble_volume`` (the parse ingest
used before ``engine.dicom.part10_index``). Ours: ``datasets_from_bytes`` (indexed parse, pydicom
for what the index leaves) then the same ``assemble_volume``. The bytes are in memory (no disk, no
network), both paths interleaved, best of 5. Data: uncompressed series of the shared corpus
(``../shared/dicom-corpus``: dcm2niix QA cases and dicom2nifti test series; GE 3D, Siemens and
Philips 2D, 12 of 16 bits stored).

Run: ``python -m benchmarks.bench_vendor_parse`` (skips, saying so, when ../shared is absent).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pydicom

from engine.dicom import assemble_volume, datasets_from_bytes, group_by_series

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "dicom-corpus"
CASES = ("dcm2niix/ge_3d_axial_mprage", "dcm2niix/siemens_2d_sagittal_head_first_supine",
         "dcm2niix/philips_classic_2d_t1_ffe", "siemens/anatomical/001_implicit")
REPEATS = 5


def _best_interleaved(*fns: Callable[[], object]) -> list[float]:
    """Best time of each, the functions taking turns so load changes hit them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEATS):
        for fn, spent in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return [min(spent) for spent in times]


def main() -> dict[str, float]:
    if not CORPUS.is_dir():
        print(f"skipped: {CORPUS} is absent (the shared vendor corpus)")
        return {}
    warnings.simplefilter("ignore")  # pydicom's warnings on odd vendor values
    ratios: dict[str, float] = {}
    for case in CASES:
        files = [p for p in sorted((CORPUS / case).rglob("*"))
                 if p.is_file() and p.suffix not in (".gz", ".json", ".md", ".txt")]
        blobs = [p.read_bytes() for p in files]

        def ours(blobs: list[bytes] = blobs) -> None:
            for series in group_by_series(datasets_from_bytes(blobs)).values():
                assemble_volume(series)

        def baseline(blobs: list[bytes] = blobs) -> None:
            for series in group_by_series([pydicom.dcmread(BytesIO(b)) for b in blobs]).values():
                assemble_volume(series)

        ours()
        baseline()  # warm-up
        base, mine = _best_interleaved(baseline, ours)
        ratios[case] = base / mine
        print(f"{case}: {len(blobs)} instances, pydicom.dcmread + assemble {base:.3f} s, "
              f"ours {mine:.3f} s: baseline/ours {base / mine:.1f}x")
    return ratios


if __name__ == "__main__":
    main()
