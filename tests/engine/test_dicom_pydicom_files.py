"""Real single files bundled in the pydicom wheel (no download): every transfer syntax of one MR
slice decodes to the same voxels and geometry, and odd files are refused with a clear reason."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom.data
import pytest
from pydicom.uid import MRImageStorage

from engine.dicom import assemble_volume, load_dataset_files
from engine.errors import InvalidSeriesError

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
MR_SMALL_VARIANTS = [
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "MR_small_implicit.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_padded.dcm",
]


def _read(name: str, *, sop_class_uid: str | None = None):  # noqa: ANN202 - a Volume
    path = TEST_FILES / name
    if not path.exists():
        pytest.skip(f"{name} is not bundled with this pydicom version")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some of these files are deliberately odd
        datasets = load_dataset_files([path])
        if sop_class_uid is not None:
            datasets[0].SOPClassUID = sop_class_uid
        return assemble_volume(datasets, min_slices=1)


@pytest.mark.parametrize("name", MR_SMALL_VARIANTS)
def test_every_encoding_of_one_slice_gives_the_same_volume(name: str) -> None:
    reference = _read("MR_small.dcm")
    volume = _read(name)
    assert volume.array.dtype.isnative and volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-6)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("MR_truncated.dcm", r"cannot be decoded .*less than expected"),
        ("reportsi.dcm", r"holds no image, only non-image objects \(1 Basic Text SR Storage "),
        ("rtplan.dcm", r"holds no image, only non-image objects \(1 RT Plan Storage instance\)"),
        ("rtdose.dcm", r"15 frames but 0 per-frame functional group items"),
        ("SC_rgb_rle.dcm", r"only non-image objects \(1 Secondary Capture Image Storage instance\)"),
        ("JPEG2000.dcm", r"only non-image objects \(1 Secondary Capture Image Storage instance\)"),
        ("badVR.dcm", r"unreadable image header"),
    ],
)
def test_odd_files_are_refused_with_a_clear_reason(name: str, reason: str) -> None:
    with pytest.raises(InvalidSeriesError, match=reason):
        _read(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("SC_rgb_rle.dcm", r"3 samples per pixel \(colour\)"),
        ("JPEG2000.dcm", r"lacks ImagePositionPatient"),
    ],
)
def test_the_same_screenshots_sent_as_mr_images_are_refused_for_their_fault(
    name: str, reason: str
) -> None:
    """A secondary capture with no place in space is left out (above); an MR image with the
    same faults is an image, so it is refused with the fault named."""
    with pytest.raises(InvalidSeriesError, match=reason):
        _read(name, sop_class_uid=MRImageStorage)
