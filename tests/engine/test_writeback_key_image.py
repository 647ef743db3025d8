"""The key image (engine/writeback/key_image.py): a secondary capture that reads back with pydicom
and highdicom, carries the marks of a derived image not for diagnosis, comes from the T1c slice
the RANO lines lie on, has the lines, the labels and the text where the geometry puts them, and is no image the ingest
would stack (a secondary capture without plane geometry). Lines measured across the acquired
images (a coronal plane of an axial T1c, an axial plane of a sagittal one) are shown on a
reformat, turned as radiologists read it.

The study is ``tests.writeback_study``: 96 x 96 x 12 voxels of 1 x 1 x 3 mm, origin (-48, -48,
-18) mm LPS; one lesion centred at voxel (48, 48, 6), d1 along x from column 36 to 60 and d2
along y from row 36 to 60 (24 mm each); ET a disc of radius 12 voxels, SNFH a ring out to 20.
The image is enlarged 6 times (96 -> 576 px): voxel (i, j) is the block of rows 6j..6j+5 and
columns 6i..6i+5.

dciodvfy (Debian dicom3tools 1.00~20220618) on it: no error, no warning. The image is kept as
test-artifacts/key-image.png.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from PIL import Image

from engine.dicom.sop_classes import non_image_class
from engine.types import Volume
from engine.writeback.key_image import LINE_RGB, build_key_image, key_lesion
from engine.writeback.key_plane import key_plane
from tests.engine.test_writeback_seg import dciodvfy_messages
from tests.writeback_study import ViewerStudy, write_viewer_study

SCALE = 6
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> ViewerStudy:
    return write_viewer_study(tmp_path_factory.mktemp("key-image-study"))


@pytest.fixture(scope="module")
def key_image_path(study: ViewerStudy, tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = build_key_image(study.content, study.sources, study.labels, series_uid=hd.UID(),
                            sop_instance_uid=hd.UID(), series_number=9903)
    path = tmp_path_factory.mktemp("key-image") / "sc.dcm"
    image.save_as(path, enforce_file_format=True)
    return path


def _block(rgb: np.ndarray, i: int, j: int) -> np.ndarray:
    """The pixels of voxel (column i, row j) in the enlarged image."""
    return rgb[SCALE * j:SCALE * (j + 1), SCALE * i:SCALE * (i + 1)].reshape(-1, 3)


def _is_line(pixels: np.ndarray) -> np.ndarray:
    return np.all(pixels == np.array(LINE_RGB), axis=-1)


def test_the_key_image_reads_back_marked_derived_and_not_for_diagnosis(
        study: ViewerStudy, key_image_path: Path) -> None:
    ds = pydicom.dcmread(key_image_path)
    image = hd.Image.from_dataset(ds, copy=False)  # highdicom reads it back as an image
    assert ds.SOPClassUID == SC_CLASS and image.SOPClassUID == SC_CLASS
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert ds.BurnedInAnnotation == "YES" and ds.ConversionType == "WSD"
    assert "not for diagnosis" in ds.SeriesDescription and "not for diagnosis" in ds.DerivationDescription
    assert ds.StudyInstanceUID == study.study_uid and ds.PatientID == study.sources[0].PatientID
    assert ds.PhotometricInterpretation == "RGB" and (ds.Rows, ds.Columns) == (96 * SCALE, 96 * SCALE)
    assert float(ds.PixelSpacing[0]) == pytest.approx(1.0 / SCALE)
    on_slice = next(s for s in study.sources if float(s.ImagePositionPatient[2]) == 0.0)  # slice 6
    assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == on_slice.SOPInstanceUID
    # no place in space: should a study holding it be ingested again, it is no image to stack
    assert non_image_class(ds) == "Secondary Capture Image Storage"


def test_the_rano_lines_labels_and_text_are_burnt_in_where_the_geometry_puts_them(
        key_image_path: Path, artifacts_dir: Path) -> None:
    rgb = pydicom.dcmread(key_image_path).pixel_array.astype(int)
    Image.fromarray(rgb.astype(np.uint8)).save(artifacts_dir / "key-image.png")  # to look at
    centre_row = rgb[SCALE * 48:SCALE * 49]  # the rows of voxel row 48: d1 runs along them
    columns = np.flatnonzero(_is_line(centre_row).any(axis=0))
    assert (columns.min() // SCALE, columns.max() // SCALE) == (36, 60)  # d1: voxel 36 to 60
    centre_column = rgb[:, SCALE * 48:SCALE * 49]  # d2 along the columns of voxel column 48
    rows = np.flatnonzero(_is_line(centre_column).any(axis=1))
    assert (rows.min() // SCALE, rows.max() // SCALE) == (36, 60)
    assert not _is_line(rgb[SCALE * 20:SCALE * 30]).any()  # nothing drawn away from the lesion
    assert not _is_line(rgb[:, SCALE * 70:]).any()
    snfh = _block(rgb, 48 + 16, 48).mean(axis=0)  # the oedema ring (radius 16), SEG colour (60, 200, 60) blended
    assert snfh[1] > snfh[0] + 30 and snfh[1] > snfh[2] + 30
    background = _block(rgb, 90, 80)  # no label: plain grey
    assert np.all(background[:, 0] == background[:, 1]) and np.all(background[:, 1] == background[:, 2])
    caption = rgb[:30, :300]  # white text on a black box, top left
    assert np.all(caption > 200, axis=-1).sum() > 300 and np.all(caption == 0, axis=-1).sum() > 2000


def test_dciodvfy_finds_nothing_to_say_about_the_key_image(key_image_path: Path) -> None:
    assert dciodvfy_messages(key_image_path) == (set(), set())


def test_the_key_lesion_is_the_largest_target_with_lines(study: ViewerStudy) -> None:
    measured = study.content.lesions[0]
    big_non_target = dataclasses.replace(measured, lesion_index=2, product_mm2=900.0, is_target=False)
    unmeasured = dataclasses.replace(measured, lesion_index=3, product_mm2=2000.0, d1_line=None, d2_line=None)
    assert key_lesion([big_non_target, measured, unmeasured]) is measured
    assert key_lesion([big_non_target, unmeasured]) is big_non_target
    assert key_lesion([unmeasured]) is None


def test_without_a_measured_lesion_the_slice_with_most_labels_is_shown(study: ViewerStudy, tmp_path: Path) -> None:
    content = dataclasses.replace(study.content, lesions=())
    image = build_key_image(content, study.sources, study.labels, series_uid=hd.UID(),
                            sop_instance_uid=hd.UID(), series_number=9903)
    counts = np.count_nonzero(study.labels.array, axis=(0, 1))
    fullest = next(s for s in study.sources
                   if float(s.ImagePositionPatient[2]) == -18.0 + 3.0 * int(np.argmax(counts)))
    assert image.SourceImageSequence[0].ReferencedSOPInstanceUID == fullest.SOPInstanceUID
    assert not _is_line(np.asarray(image.pixel_array)).any()



def test_lines_measured_across_the_acquired_images_are_shown_on_a_reformat(study: ViewerStudy) -> None:
    """Lines in a coronal plane of the axial study (j = 48): d1 along x on slice 6, d2 along z
    from slice 4 to 8. The key image is the coronal reformat, superior up, the patient's right on
    the left, 3 mm slices enlarged to square 1/6 mm pixels (36 mm x 96 mm: 216 x 576)."""
    lps = lambda i, k: (-48.0 + i, -48.0 + 48, -18.0 + 3.0 * k)  # noqa: E731 - voxel (i, 48, k) in LPS mm
    lesion = dataclasses.replace(study.content.lesions[0], d1_line=(lps(36, 6), lps(60, 6)),
                                 d2_line=(lps(48, 4), lps(48, 8)), d2_mm=12.0)
    content = dataclasses.replace(study.content, lesions=(lesion,))
    image = build_key_image(content, study.sources, study.labels, series_uid=hd.UID(),
                            sop_instance_uid=hd.UID(), series_number=9903)
    assert (image.Rows, image.Columns) == (216, 576) and list(image.PatientOrientation) == ["L", "F"]
    assert float(image.PixelSpacing[0]) == pytest.approx(1 / 6)
    assert len(image.SourceImageSequence) == 12  # every T1c image gave a line of the reformat
    rgb = np.asarray(image.pixel_array)
    row_of = lambda k: round((11 - k + 0.5) * 18 - 0.5)  # noqa: E731 - slice k, superior up, 18 px a slice
    assert _is_line(rgb[row_of(6), 6 * 37:6 * 60]).all()  # d1 across the whole lesion
    assert _is_line(rgb[row_of(7):row_of(5), 6 * 48 + 2]).all()  # d2 down the slices
    assert not _is_line(rgb[row_of(1)]).any() and not _is_line(rgb[row_of(10)]).any()


def test_an_axial_plane_of_a_sagittal_grid_is_turned_anterior_up_right_on_the_left() -> None:
    """A sagittal grid (i: anterior to posterior, j: superior to inferior, k: left to right, 4 mm)
    with lines in an axial plane (constant j)."""
    affine = np.array([[0.0, 0.0, 4.0, -80.0], [-4.0, 0.0, 0.0, 100.0], [0.0, -4.0, 0.0, 140.0],
                       [0.0, 0.0, 0.0, 1.0]])
    labels = Volume(array=np.zeros((60, 60, 42), dtype=np.uint8), affine=affine)
    lines = [np.array([[30.0, 28.4, 16.0], [34.0, 28.5, 7.0]]), np.array([[29.0, 28.4, 12.0], [34.0, 28.5, 13.0]])]
    plane = key_plane(labels, lines)
    assert (plane.axis, plane.index, plane.orientation) == (1, 28, ("L", "P"))
    marker = np.zeros((60, 60, 42))
    marker[2, 28, 40] = 1.0  # anterior (i = 2), on the patient's right (k runs to the right)
    rows, columns = np.nonzero(plane.cut(marker))
    assert (rows[0], columns[0]) == (2, 41 - 40)  # near the top (anterior), near the left (patient's right)
    column, row = plane.pixels(np.array([[2.0, 28.0, 40.0]]), labels.array.shape)[0]
    assert (row, column) == (rows[0], columns[0])
