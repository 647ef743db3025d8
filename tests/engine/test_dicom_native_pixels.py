"""The uncompressed little-endian fast path of pixel decoding gives exactly what pydicom's
``pixel_array`` gives, on every single-frame native file bundled with pydicom, and leaves every
other case (compressed, big endian, BitsStored < BitsAllocated, wrong length) to pydicom."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest

from engine.dicom.pixels import _native_frame

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _native_files() -> list[Path]:
    return sorted(TEST_FILES.glob("*.dcm"))


def test_fast_path_equals_pixel_array_on_pydicom_files() -> None:
    compared = declined = 0
    for path in _native_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                raw = ds.get("PixelData")
            except Exception:  # noqa: BLE001, S112 - deliberately broken files in pydicom's set
                continue
            fast = _native_frame(ds, raw)
            if fast is None:
                declined += 1
                continue
            expected = ds.pixel_array
        assert fast.dtype == expected.dtype, path.name
        np.testing.assert_array_equal(fast, expected, err_msg=path.name)
        compared += 1
    assert compared >= 5 and declined >= 5, (compared, declined)


def test_declines_what_pydicom_must_decode() -> None:
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")  # explicit little endian, 16 bits stored 16
    raw = ds.PixelData
    assert _native_frame(ds, raw) is not None
    assert _native_frame(ds, raw[:-2]) is None  # short: pydicom names the problem
    ds.BitsStored = 12
    assert _native_frame(ds, raw) is None  # pydicom sign-extends / masks those
    ds.BitsStored = 16
    ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    assert _native_frame(ds, raw) is None


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "rtdose.dcm"])
def test_declines_big_endian_compressed_and_multiframe(name: str) -> None:
    path = TEST_FILES / name
    if not path.exists():
        pytest.skip(f"{name} is not bundled with this pydicom version")
    ds = pydicom.dcmread(path)
    assert _native_frame(ds, ds.get("PixelData")) is None
