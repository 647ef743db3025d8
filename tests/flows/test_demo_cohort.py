"""The demo's cohort written in a child process while the stream runs: each study's files are
handed over as soon as they are written, and a writer that fails stops the demo with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import GlioWatchError
from engine.modelling.synth.cohort import cohort_visits, study_dicom_files
from flows.demo_cohort import CohortWriter


def test_studies_come_out_as_written_and_match_the_finished_cohort(tmp_path: Path) -> None:
    writer = CohortWriter(tmp_path / "cohort", patients=1, visits=3, seed=4, size="test").start()
    try:
        handed: list[list[Path]] = []
        for files in writer.studies():
            assert files and all(f.is_file() for f in files)  # on disk when handed over
            handed.append(files)
    finally:
        writer.stop()
    assert len(handed) == 3
    assert handed == [study_dicom_files(tmp_path / "cohort", v.entry) for v in cohort_visits(tmp_path / "cohort")]


def test_a_failing_writer_stops_the_stream_with_its_reason(tmp_path: Path) -> None:
    writer = CohortWriter(tmp_path / "cohort", patients=1, visits=2, seed=4, size="test").start()  # < 3 visits
    try:
        with pytest.raises(GlioWatchError, match="could not write its synthetic cohort") as caught:
            list(writer.studies())
        assert "n_visits" in (caught.value.detail or "")
    finally:
        writer.stop()
