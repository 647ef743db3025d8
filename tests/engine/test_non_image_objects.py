"""Non-image objects beside the images of a series or a study (raw data, presentation states, SR,
SEG, key-object selections, screenshots) are left out and reported, never make the images
unreadable; the folder reader and the archive ingest decide in one place
(engine/dicom/sop_classes.py). The shared Philips case is in test_conformance.py."""

from __future__ import annotations

import copy
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from engine.archive.folder import FolderArchive
from engine.dicom import assemble_volume, read_study_dir
from engine.dicom.sop_classes import IgnoredObjects
from engine.errors import InvalidSeriesError
from engine.ingest import ingest_study
from engine.series_rules import load_series_rules
from engine.settings import load_settings
from engine.types import Sequence
from tests.conftest import SHARED_DIR
from tests.dicom_factory import write_non_image_objects, write_series, write_study

STUDY_DATE = date(2025, 3, 14)
RAW_DATA, BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.66", "1.2.840.10008.5.1.4.1.1.88.11"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
PHILIPS_SERIES_DATA = "1.3.46.670589.11.0.0.12.2"  # private, no pixel data
PHILIPS_CASE = SHARED_DIR / "dicom-corpus" / "dcm2niix" / "philips_enhanced_2d_t1_tse_with_raw_data"


def image_series(tmp_path: Path, sequence: str = "T1c") -> list[pydicom.Dataset]:
    paths = write_series(tmp_path / sequence, sequence=sequence, patient_id="P-1",
                         study_uid=generate_uid(), study_date=STUDY_DATE)
    return [pydicom.dcmread(p) for p in paths]


def non_image_copy(
    image: pydicom.Dataset, sop_class_uid: str, *, modality: str, pixels: bool, geometry: bool
) -> pydicom.Dataset:
    """An object of ``sop_class_uid`` in the image's series (same study, series, geometry)."""
    ds = copy.deepcopy(image)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.InstanceNumber = modality, 100
    if not pixels:
        del ds.PixelData
    if not geometry:
        del ds.ImagePositionPatient, ds.ImageOrientationPatient
    return ds


@pytest.mark.parametrize(
    ("sop_class_uid", "modality", "pixels", "geometry", "name"),
    [
        (RAW_DATA, "MR", False, True, "Raw Data Storage"),
        (BASIC_TEXT_SR, "SR", False, False, "Basic Text SR Storage"),
        ("1.2.840.10008.5.1.4.1.1.88.59", "KO", False, False, "Key Object Selection Document Storage"),
        ("1.2.840.10008.5.1.4.1.1.11.1", "PR", False, False,
         "Grayscale Softcopy Presentation State Storage"),
        ("1.2.840.10008.5.1.4.1.1.66.4", "SEG", True, True, "Segmentation Storage"),
        (SECONDARY_CAPTURE, "OT", True, False, "Secondary Capture Image Storage"),
        (PHILIPS_SERIES_DATA, "MR", False, True, f"SOP class {PHILIPS_SERIES_DATA}"),
    ],
    ids=["raw-data", "text-sr", "key-objects", "presentation-state", "seg-with-pixels",
         "screenshot", "private-no-pixels"],
)  # fmt: skip
def test_non_image_objects_in_an_image_series_are_left_out_and_listed(
    tmp_path: Path, sop_class_uid: str, modality: str, pixels: bool, geometry: bool, name: str
) -> None:
    images = image_series(tmp_path)
    plain = assemble_volume(images)
    extra = [non_image_copy(images[2], sop_class_uid, modality=modality, pixels=pixels,
                            geometry=geometry) for _ in range(2)]  # fmt: skip
    volume = assemble_volume([extra[0], *images[:4], extra[1], *images[4:]])
    np.testing.assert_array_equal(volume.array, plain.array)
    np.testing.assert_allclose(volume.affine, plain.affine)
    assert volume.metadata["instance_count"] == len(images)
    assert volume.metadata["ignored_objects"] == (
        IgnoredObjects(series_uid=str(images[0].SeriesInstanceUID),
                       series_description=str(images[0].SeriesDescription),
                       sop_class_uid=sop_class_uid, sop_class_name=name, instance_count=2),
    )  # fmt: skip


def test_secondary_capture_that_says_where_it_lies_is_an_image(tmp_path: Path) -> None:
    images = image_series(tmp_path)
    for ds in images:
        ds.SOPClassUID = SECONDARY_CAPTURE
    volume = assemble_volume(images)
    assert volume.array.shape[2] == len(images) and volume.metadata["ignored_objects"] == ()


def test_a_series_of_non_image_objects_only_is_refused_naming_them(tmp_path: Path) -> None:
    images = image_series(tmp_path)
    reports = [non_image_copy(ds, BASIC_TEXT_SR, modality="SR", pixels=False, geometry=False)
               for ds in images[:2]]  # fmt: skip
    only = r"holds no image, only non-image objects \(2 Basic Text SR Storage instances\)"
    with pytest.raises(InvalidSeriesError, match=only):
        assemble_volume(reports)


def write_study_with_seg_sr_pr(root: Path) -> tuple[str, dict[str, Path]]:
    """A T1c + FLAIR study; a SEG and an SR series beside it, a presentation state in the T1c
    series (its file sorts first, so the folder archive takes Modality PR for that series)."""
    study_uid, files = write_study(root, patient_id="P-1", study_date=STUDY_DATE,
                                   sequences=("T1c", "FLAIR"))
    t1c = [p for p in files if p.parent.name == "T1c"]
    return study_uid, write_non_image_objects(root, t1c)


def test_study_with_seg_sr_and_presentation_state_converts_its_images(tmp_path: Path) -> None:
    study_uid, objects = write_study_with_seg_sr_pr(tmp_path / "study")
    before = read_study_dir(tmp_path / "study" / "T1c")
    study = read_study_dir(tmp_path / "study")
    assert study.refused == ()
    described = sorted(header["SeriesDescription"] for header, _ in study.volumes)
    assert described == ["AX T1 POST GD", "AX T2 FLAIR"]
    assert sorted((item.sop_class_name, item.instance_count) for item in study.ignored) == [
        ("Comprehensive 3D SR Storage", 1),
        ("Grayscale Softcopy Presentation State Storage", 1),
        ("Segmentation Storage", 1),
    ]
    t1c = next(v for header, v in study.volumes if header["SeriesDescription"] == "AX T1 POST GD")
    np.testing.assert_array_equal(t1c.array, before.volumes[0][1].array)
    (left_out,) = t1c.metadata["ignored_objects"]
    assert left_out.sop_class_uid == pydicom.dcmread(objects["PR"]).SOPClassUID


def ingest(archive_root: Path, state: Path) -> Any:
    settings = load_settings(environ={"GLIOWATCH_STATE_DIR": str(state)})
    archive = FolderArchive(archive_root)
    (study_id,) = archive.list_studies()
    return ingest_study(archive, study_id, rules=load_series_rules(settings.series_rules),
                        volumes_dir=settings.volumes_dir, key_salt="test-salt")  # fmt: skip


def test_ingest_leaves_out_non_image_objects_like_the_folder_reader(tmp_path: Path) -> None:
    write_study_with_seg_sr_pr(tmp_path / "archive")
    archive = FolderArchive(tmp_path / "archive")
    modalities = {archive.series(s).modality for s in archive.study(archive.list_studies()[0]).series_ids}
    assert modalities == {"PR", "MR", "SEG", "SR"}  # the T1c series shows its PR's modality
    study = ingest(tmp_path / "archive", tmp_path / "state")
    assert study.quarantine_reason == "" and study.sequences == (Sequence.T1C, Sequence.FLAIR)
    by_status = {(s.status, s.rule): s for s in study.series}
    t1c = next(s for s in study.series if s.sequence == Sequence.T1C)
    assert t1c.status == "USED" and t1c.reason == ""
    assert t1c.explanation.endswith(
        "; 1 Grayscale Softcopy Presentation State Storage instance left out (not images)"
    )
    assert (tmp_path / "state" / "volumes" / t1c.volume_path).is_file()
    unused = sorted(s.explanation for s in study.series if s.status == "UNUSED")
    assert unused == [
        "no image: 1 Comprehensive 3D SR Storage instance left out",
        "no image: 1 Segmentation Storage instance left out",
    ]
    assert ("REFUSED", "refused") not in by_status


def test_ingest_of_the_shared_philips_series_with_raw_data(shared_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(PHILIPS_CASE / "dicom", tmp_path / "archive" / "study")
    study = ingest(tmp_path / "archive", tmp_path / "state")
    (series,) = study.series
    assert (series.status, series.sequence, series.reason) == ("USED", Sequence.T1, "")
    assert series.explanation.endswith("; 1 Raw Data Storage instance left out (not images)")
    assert series.n_instances == 2 and series.shape[2] > 1
