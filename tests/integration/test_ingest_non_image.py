"""Non-image objects through the real Orthanc: a study with a SEG, an SR and a presentation state,
and the shared Philips series with its Raw Data instance, ingest their images and record what was
left out in the store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from engine.types import Sequence
from tests.conftest import SHARED_DIR
from tests.dicom_factory import write_non_image_objects, write_study
from tests.integration.test_stream import cycle, upload, wait_stable

pytestmark = pytest.mark.integration
PHILIPS_CASE = SHARED_DIR / "dicom-corpus" / "dcm2niix" / "philips_enhanced_2d_t1_tse_with_raw_data"


def test_study_with_seg_sr_and_presentation_state(
    archive: OrthancArchive, settings: Settings, tmp_path: Path
) -> None:
    study_uid, files = write_study(tmp_path / "study", patient_id="MRN-7", study_date=date(2025, 5, 2),
                                   sequences=("T1c", "FLAIR"))
    objects = write_non_image_objects(tmp_path / "study", [p for p in files if p.parent.name == "T1c"])
    upload(archive, [objects["PR"], *files, objects["SEG"], objects["SR"]])  # the PR first
    wait_stable(archive, 1)
    (study_id,) = archive.list_studies()
    modalities = sorted(archive.series(s).modality for s in archive.study(study_id).series_ids)
    assert modalities == ["MR", "PR", "SEG", "SR"]  # Orthanc took the T1c series' from its PR
    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store)
        assert report.ingested == [study_uid] and report.quarantined == []
        rows = store.query_dicts("SELECT sequence, status, explanation, reason FROM series")
    used = sorted(r["sequence"] for r in rows if r["status"] == "USED")
    assert used == [Sequence.FLAIR.value, Sequence.T1C.value]
    assert not [r for r in rows if r["status"] == "REFUSED"]
    t1c = next(r for r in rows if r["sequence"] == Sequence.T1C.value)
    assert "1 Grayscale Softcopy Presentation State Storage instance left out" in t1c["explanation"]
    unused = sorted(r["explanation"] for r in rows if r["status"] == "UNUSED")
    assert unused == [
        "no image: 1 Comprehensive 3D SR Storage instance left out",
        "no image: 1 Segmentation Storage instance left out",
    ]


def test_shared_philips_series_with_raw_data(
    shared_dir: Path, archive: OrthancArchive, settings: Settings
) -> None:
    folder = PHILIPS_CASE / "dicom"
    upload(archive, sorted(folder.iterdir(), reverse=True))  # the Raw Data instance first
    wait_stable(archive, 1)
    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store)
        assert len(report.ingested) == 1 and report.quarantined == []
        (row,) = store.query_dicts("SELECT sequence, status, explanation, n_instances FROM series")
    assert (row["sequence"], row["status"], row["n_instances"]) == (Sequence.T1.value, "USED", 2)
    assert row["explanation"].endswith("; 1 Raw Data Storage instance left out (not images)")
