"""The demo's cohort written in a child process while the stream runs: each study's files are
handed over as soon as they are written, and a writer that fails stops the demo with its reason."""

from __future__ import annotations

import sys
import types
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


def test_the_writer_does_not_rerun_the_parents_main_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit's AppTest leaves the dashboard script installed as ``__main__``; a multiprocessing
    spawn child re-ran it (and died in its login). The writer must not depend on ``__main__``."""
    script = tmp_path / "main_that_must_not_run.py"
    script.write_text("raise SystemExit('the parent main script was re-run in the child')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    writer = CohortWriter(tmp_path / "cohort", patients=1, visits=3, seed=4, size="test").start()
    try:
        assert len(list(writer.studies())) == 3
    finally:
        writer.stop()
