"""One series per study sequence, the finest voxels win: the rule ingestion and the folder
commands share (``engine.series_choice``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from engine.ingest import IngestedSeries, _pick_one_per_sequence
from engine.series_choice import finest_per_sequence, pick_study_volumes
from engine.series_rules import load_series_rules
from engine.settings import Settings
from engine.types import Sequence, Volume


def test_the_finest_voxels_win_per_sequence() -> None:
    winners = finest_per_sequence([
        (Sequence.T1C, 1.0, "1.2.9"), (Sequence.T1C, 0.5, "1.2.8"), (Sequence.FLAIR, 2.0, "1.3"),
        (Sequence.OTHER, 0.1, "1.4"),
    ])
    assert winners == {Sequence.T1C: 1, Sequence.FLAIR: 2}


def test_equal_voxels_go_to_the_smaller_uid_then_the_first_met() -> None:
    assert finest_per_sequence([(Sequence.T2, 1.0, "1.2.9"), (Sequence.T2, 1.0, "1.2.10")]) == {Sequence.T2: 1}
    assert finest_per_sequence([(Sequence.T2, 1.0, "1.2"), (Sequence.T2, 1.0, "1.2")]) == {Sequence.T2: 0}


def test_ingestion_marks_the_coarser_series_unused_with_why() -> None:
    base = IngestedSeries(series_uid="1.1", archive_series_id="a", description="T1c 1mm", sequence=Sequence.T1C,
                          rule="r", explanation="", n_instances=1, status="USED", voxel_mm3=1.0)
    coarse = replace(base, series_uid="1.2", description="T1c 2mm", voxel_mm3=8.0)
    out = _pick_one_per_sequence([coarse, base])
    assert [s.status for s in out] == ["UNUSED", "USED"]
    assert out[0].reason == "another T1c series (T1c 1mm) has finer voxels (1.00 vs 8.00 mm3)"


def test_a_study_folder_keeps_the_finest_volume_per_sequence() -> None:
    rules = load_series_rules(Settings().series_rules)

    def volume(mm: float) -> Volume:
        return Volume(np.zeros((2, 2, 2), dtype=np.float32), np.diag([mm, mm, mm, 1.0]), {})

    fine, coarse = volume(1.0), volume(2.0)
    header = {"SeriesDescription": "T1 MPRAGE post contrast", "Modality": "MR"}
    volumes, notes = pick_study_volumes([({**header, "SeriesInstanceUID": "1.1"}, coarse),
                                         ({**header, "SeriesInstanceUID": "1.2"}, fine)], rules=rules)
    assert len(notes) == 2
    assert len(volumes) == 1
    assert next(iter(volumes.values())) is fine
