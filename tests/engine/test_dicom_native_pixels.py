"""The uncompressed little-endian fast path of pixel decoding gives exactly what pydicom's
``pixel_array`` gives, on every single-frame native file bundled with pydicom and in the shared
corpus, BitsStored < BitsAllocated included, and leaves every other case (compressed, big
endian, wrong length) to pydicom.
Scaling each slice as it is stacked gives exactly the voxels (and refusals) of scaling the stack."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pydicom.data
import pytest

from engine.dicom import group_by_series, load_dataset_files
from engine.dicom.multiframe import number_of_frames
from engine.dicom.pixels import _native_frame, rescale_values, rescaled, rescaled_stack, stacked_pixels
from engine.dicom.sop_classes import split_series_objects
from engine.errors import InvalidSeriesError
from tests.engine.test_dicom import make_series

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
    ds.BitsStored = 0
    assert _native_frame(ds, raw) is None  # nonsense: pydicom names the problem
    ds.BitsStored = 16
    ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
    assert _native_frame(ds, raw) is None


@pytest.mark.parametrize("signed", [0, 1])
@pytest.mark.parametrize("stored", [8, 12, 15])
def test_unused_high_bits_are_cleared_or_sign_filled_like_pydicom(stored: int, signed: int) -> None:
    values = np.array([[0xF123, 0x0ABC, 0x8001, 0x7FFF, 0x0800, 0xFFFF, 0, 1]] * 7, dtype="<u2")
    ds = make_series(pixels=values)[0]
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = stored, stored - 1, signed
    fast = _native_frame(ds, ds.PixelData)
    assert fast is not None
    expected = ds.pixel_array
    assert fast.dtype == expected.dtype
    np.testing.assert_array_equal(fast, expected)
    assert not np.array_equal(fast, values.view(fast.dtype))  # the high bits did change something


def test_fast_path_equals_pixel_array_on_the_corpus(shared_dir: Path) -> None:
    compared = partial_bits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted((shared_dir / "dicom-corpus").rglob("*.dcm")):
            try:
                ds = pydicom.dcmread(path)
            except Exception:  # noqa: BLE001, S112 - not every file in the corpus is DICOM
                continue
            fast = _native_frame(ds, ds.get("PixelData")) if "PixelData" in ds else None
            if fast is None:
                continue
            expected = ds.pixel_array
            assert fast.dtype == expected.dtype, path
            np.testing.assert_array_equal(fast, expected, err_msg=str(path))
            compared += 1
            partial_bits += ds.BitsStored < ds.BitsAllocated
    assert compared >= 100 and partial_bits >= 50, (compared, partial_bits)


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "MR_small_RLE.dcm", "rtdose.dcm"])
def test_declines_big_endian_compressed_and_multiframe(name: str) -> None:
    path = TEST_FILES / name
    if not path.exists():
        pytest.skip(f"{name} is not bundled with this pydicom version")
    ds = pydicom.dcmread(path)
    assert _native_frame(ds, ds.get("PixelData")) is None


def _both_ways(series: list[Any]) -> tuple[Any, Any]:
    """rescaled_stack, and stacked_pixels + rescale_values + rescaled: arrays or refusal messages."""
    rows, columns = int(series[0].Rows), int(series[0].Columns)
    outcomes = []
    for fused in (True, False):
        try:
            if fused:
                outcomes.append(rescaled_stack(series, rows=rows, columns=columns, label="s"))
            else:
                stack = stacked_pixels(series, rows=rows, columns=columns, label="s")
                slopes, intercepts = rescale_values(series, "s")
                outcomes.append(rescaled(stack, slopes=slopes, intercepts=intercepts, label="s"))
        except InvalidSeriesError as exc:
            outcomes.append(exc.message)
    return outcomes[0], outcomes[1]


def _assert_same(fused: Any, plain: Any, name: str) -> None:
    assert type(fused) is type(plain), name
    if isinstance(plain, str):
        assert fused == plain, name
    else:
        assert fused.dtype == plain.dtype, name
        np.testing.assert_array_equal(fused, plain, err_msg=name)


@pytest.mark.parametrize("rescale", [{}, {"RescaleSlope": "0.5", "RescaleIntercept": "-3.25"},
                                     {"RescaleSlope": "1.37"}, {"RescaleSlope": "1", "RescaleIntercept": "-1024"},
                                     {"RescaleSlope": "1", "RescaleIntercept": "0.5"}, {"RescaleSlope": "0"},
                                     {"RescaleSlope": "1e36"}])
def test_scaling_while_stacking_equals_scaling_the_stack(rescale: dict[str, str]) -> None:
    series = make_series(**rescale)
    series[2].RescaleSlope = series[2].get("RescaleSlope", "1")  # per-slice values stay per slice
    _assert_same(*_both_ways(series), str(rescale))


def test_scaling_while_stacking_equals_scaling_the_stack_on_the_corpus(shared_dir: Path) -> None:
    compared = scaled = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for folder in sorted({p.parent for p in (shared_dir / "dicom-corpus").rglob("*.dcm")}):
            for series in group_by_series(load_dataset_files(sorted(folder.glob("*.dcm")))).values():
                images = list(split_series_objects(series).images)
                if not images or any(number_of_frames(ds) > 1 for ds in images) or len(
                        {(ds.get("Rows"), ds.get("Columns")) for ds in images}) != 1:
                    continue
                _assert_same(*_both_ways(images), str(folder))
                compared += 1
                scaled += any(float(ds.get("RescaleSlope", 1) or 1) != 1 for ds in images)
    assert compared >= 10 and scaled >= 1, (compared, scaled)
