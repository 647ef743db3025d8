"""The demo as a live stream, through the real Orthanc, Prefect flows, model and store: studies are
sent over time and each is reported (console line, published snapshot) as it is processed, before
the rest of the cohort has even been sent."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from engine.modelling.synth import generate_cohort
from engine.settings import Settings
from engine.store import open_store
from engine.store.ingest import stream_health
from engine.modelling.synth.cohort import cohort_visits, study_dicom_files
from flows.demo_stream import PacedUploader, stream_until_done
from flows.prefect_env import configure_prefect
from flows.runtime import build_runtime
from engine.archive.orthanc import OrthancArchive
from dashboard.stream import progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # ~7 min on the contended 2-core machine


def test_studies_reported_one_by_one_while_the_cohort_is_still_being_sent(
    archive: OrthancArchive, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    manifest = generate_cohort(n_patients=1, seed=5, out_dir=tmp_path / "cohort", size="test", n_visits=3)
    studies = [study_dicom_files(manifest.parent, v.entry) for v in cohort_visits(manifest.parent)]
    assert len(studies) == 3
    configure_prefect(settings)
    rt = build_runtime(settings)
    uploader = PacedUploader(studies, archive.upload_file, ahead=1)
    lines: list[tuple[str, int, tuple[int, int]]] = []

    def record(line: str) -> None:  # what was sent, and what the published snapshot said, per line
        with open_store(settings.snapshot_path, read_only=True) as snap:
            lines.append((line, uploader.sent, progress(stream_health(snap)["studies_by_status"])))

    uploader.start()
    try:
        cycles = stream_until_done(rt, uploader, 3, timeout_s=600, print_line=record)
    finally:
        uploader.stop()
        rt.close()
    per_study = [(line, sent, snap) for line, sent, snap in lines if line.lstrip().startswith("[")]
    assert [line.split("]")[0].strip() for line, _, _ in per_study] == ["[1/3", "[2/3", "[3/3"]
    assert all("ASSESSED" in line or "MRI" in line for line, _, _ in per_study)
    first_line, sent_then, snapshot_then = per_study[0]
    assert sent_then < 3, "the first study was reported only after the whole cohort was sent"
    assert snapshot_then == (1, 1), f"the snapshot did not show the first study alone: {snapshot_then}"
    assert cycles >= 3
    assert any(line.lstrip().startswith("cycle") and "/3 processed" in line for line, _, _ in lines)
