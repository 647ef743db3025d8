"""One series per study sequence: the finest voxels win.

The one place this rule lives. Ingestion (``engine.ingest``) marks the series that lose UNUSED
with why; the folder commands (``gliowatch segment``, ``gliowatch calibrate``) and the
segmentation benchmarks take the winners of a study folder through :func:`pick_study_volumes`.
Ties on voxel size go to the smaller series UID, then to the series met first.

>>> from engine.types import Sequence
>>> finest_per_sequence([(Sequence.T1C, 1.0, "1.2.3"), (Sequence.T1C, 0.5, "1.2.4"), (Sequence.OTHER, 0.1, "9")])
{<Sequence.T1C: 'T1c'>: 1}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.series_rules import SeriesRules, classify_series
from engine.types import STUDY_SEQUENCES, Sequence, Volume


def finest_per_sequence(candidates: Iterable[tuple[Sequence, float, str]]) -> dict[Sequence, int]:
    """Index of the winning candidate per study sequence, from (sequence, voxel size, series UID)
    candidates (the voxel size in one unit for all, mm³ or mL); a candidate whose sequence is not a
    study sequence never wins."""
    best: dict[Sequence, tuple[float, str, int]] = {}
    for index, (sequence, voxel_size, series_uid) in enumerate(candidates):
        if sequence not in STUDY_SEQUENCES:
            continue
        key = (float(voxel_size), str(series_uid), index)
        if sequence not in best or key < best[sequence]:
            best[sequence] = key
    return {sequence: key[2] for sequence, key in best.items()}


def pick_study_volumes(
    series: Iterable[tuple[Mapping[str, Any], Volume]], *, rules: SeriesRules
) -> tuple[dict[Sequence, Volume], list[str]]:
    """One volume per study sequence of a study folder (classified with the series rules, the
    finest voxels win) and a line per series for the log."""
    items = list(series)
    notes: list[str] = []
    candidates: list[tuple[Sequence, float, str]] = []
    for header, volume in items:
        cls = classify_series(header, rules)
        uid = str(header.get("SeriesInstanceUID", ""))
        notes.append(f"{header.get('SeriesDescription') or uid}: {cls.sequence} ({cls.rule})")
        candidates.append((cls.sequence, volume.voxel_ml, uid))
    winners = finest_per_sequence(candidates)
    return {sequence: items[index][1] for sequence, index in winners.items()}, notes
