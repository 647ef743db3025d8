"""Decode and validate the pixels of a sorted slice stack (pydicom + pylibjpeg plugins).

pydicom only decodes when the pixels are touched, and raises many exception types (ValueError
for short data, RuntimeError / NotImplementedError for a missing or failing plugin,
AttributeError when there is no pixel element, ...). Each becomes a refusal that names the
instance and keeps pydicom's text as the detail.

Which value a voxel holds: the *rescaled* value ``stored * RescaleSlope + RescaleIntercept``
(DICOM's modality LUT, per slice or per frame), for every vendor. For Philips that is the
"displayed value"; Philips also writes a private scale slope (2005,100E) from which dcm2niix
computes the "floating-point value" ``displayed / (RescaleSlope * scale slope)``. GlioWatch keeps
the displayed value because (1) it is what the standard defines and what every viewer, PACS and
dicom2nifti show, so one rule holds for all vendors; (2) the floating-point value depends on a
private tag whose meaning changed between Philips software versions and which anonymisers and
PACS routes may drop; (3) MR intensities have no unit: the segmentation normalises each channel
of each scan (z-scores), so a factor constant over a series changes no label. Within a series
whose slices share one RescaleSlope and one scale slope (the usual case), GlioWatch's volume is
dcm2niix's times the constant ``RescaleSlope * scale slope``; tests/engine/test_conformance.py
checks this on the shared Philips cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.dicom.geometry import series_refusal
from engine.dicom.reader import READ_ERRORS, text_value
from engine.errors import InvalidSeriesError

#: what decoding can raise (pydicom, its handlers and the pylibjpeg plugins).
DECODE_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, RuntimeError, MemoryError)
_PYO3_PANIC = "PanicException"
#: uncompressed little-endian syntaxes whose pixels are the element's bytes as they are
_NATIVE_SYNTAXES = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: a float32 magnitude safely inside its range (max ~3.4e38), rounding included
_FLOAT32_SAFE = 1e38


def has_pixel_data(ds: Any) -> bool:
    """Whether the dataset carries a pixel data element at all."""
    return any(keyword in ds for keyword in _PIXEL_KEYWORDS)


def stacked_pixels(
    datasets: Sequence[Any],
    *,
    rows: int,
    columns: int,
    label: str,
    exam: str | None = None,
) -> np.ndarray:
    """Decode single-frame slices (already sorted) into one ``[column, row, slice]`` array.

    The stored values are returned; apply :func:`rescaled` next (or use :func:`rescaled_stack`).
    """
    return _stack(datasets, rows=rows, columns=columns, label=label, exam=exam, scale=None)[0]


def rescaled_stack(
    datasets: Sequence[Any],
    *,
    rows: int,
    columns: int,
    label: str,
    exam: str | None = None,
) -> np.ndarray:
    """:func:`stacked_pixels`, :func:`rescale_values` then :func:`rescaled`: the same voxels and the
    same refusals in the same order, but when the result is float32 anyway (a slope other than 1
    or a fractional intercept) each slice is scaled as it is written: one array, one pass."""
    unreadable: InvalidSeriesError | None = None
    try:
        slopes, intercepts = rescale_values(datasets, label, exam)
    except InvalidSeriesError as exc:  # raised after the pixels are decoded, as before
        unreadable, slopes, intercepts = exc, np.ones(len(datasets)), np.zeros(len(datasets))
    usable = bool(np.all(np.isfinite(slopes)) and np.all(np.isfinite(intercepts)) and np.all(slopes != 0))
    floating = not np.all(slopes == 1.0) or not np.all(intercepts == np.round(intercepts))
    scale = (slopes.astype(np.float32), intercepts.astype(np.float32)) if usable and floating else None
    stack, stored = _stack(datasets, rows=rows, columns=columns, label=label, exam=exam,
                           scale=None if unreadable else scale)
    if unreadable is not None:
        raise unreadable
    if scale is None:
        return rescaled(stack, slopes=slopes, intercepts=intercepts, label=label, exam=exam)
    _refuse_non_finite(stack, _magnitude_bound(stored, slopes, intercepts), label, exam)
    return stack


def _stack(
    datasets: Sequence[Any],
    *,
    rows: int,
    columns: int,
    label: str,
    exam: str | None,
    scale: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.dtype]:
    """The ``[column, row, slice]`` array (stored values, or ``stored * slope + intercept`` in
    float32 with ``scale``) and the stored dtype."""
    stack: np.ndarray | None = None
    stored: np.dtype | None = None
    for index, ds in enumerate(datasets):
        pixels = _decoded(ds, index, label, exam)
        if pixels.shape != (rows, columns):
            reason = (
                f"instance {_instance_name(ds, index)} decodes to an array of shape "
                f"{pixels.shape} where Rows x Columns is {rows}x{columns}"
            )
            raise series_refusal(label, reason, exam=exam)
        native = pixels.dtype.newbyteorder("=")  # whatever the transfer syntax stored
        stored = native if stored is None else np.result_type(stored, native)
        if stack is None:
            dtype = np.float32 if scale is not None else native
            stack = np.empty((len(datasets), rows, columns), dtype=dtype)
        elif scale is None and native != stack.dtype:
            stack = stack.astype(np.result_type(stack.dtype, native), copy=False)
        if scale is None:
            stack[index] = pixels
        else:  # float32 arithmetic, as rescaled() does on the whole array
            np.multiply(pixels, scale[0][index], out=stack[index], dtype=np.float32)
            np.add(stack[index], scale[1][index], out=stack[index])
    assert stack is not None and stored is not None  # noqa: S101 - callers pass at least one slice
    return stack.transpose(2, 1, 0), stored  # [slice, row, col] -> [col, row, slice], no copy


def frame_pixels(
    ds: Any, *, frames: int, rows: int, columns: int, label: str, exam: str | None = None
) -> np.ndarray:
    """Decode a multi-frame instance into a ``[column, row, frame]`` array (frame order)."""
    pixels = _decoded(ds, 0, label, exam, ndim=3)
    if pixels.shape != (frames, rows, columns):
        reason = (
            f"the multi-frame instance decodes to an array of shape {pixels.shape} where "
            f"NumberOfFrames x Rows x Columns is {frames}x{rows}x{columns}"
        )
        raise series_refusal(label, reason, exam=exam)
    return pixels.astype(pixels.dtype.newbyteorder("="), copy=False).transpose(2, 1, 0)


def rescaled(
    volume: np.ndarray,
    *,
    slopes: np.ndarray,
    intercepts: np.ndarray,
    label: str,
    exam: str | None = None,
) -> np.ndarray:
    """Apply RescaleSlope / RescaleIntercept per slice (last axis) and refuse non-finite voxels.

    The stored integer type is kept when no rescale is needed; integer intercepts give int16
    (or int32 when needed); anything else is float32.
    """
    finite = np.all(np.isfinite(slopes)) and np.all(np.isfinite(intercepts))
    if not finite or np.any(slopes == 0):
        raise series_refusal(label, "RescaleSlope is zero or not finite", exam=exam)
    unit_slope = bool(np.all(slopes == 1.0))
    bound = _magnitude_bound(volume.dtype, slopes, intercepts)  # None: float input, no bound
    if unit_slope and np.all(intercepts == 0.0):
        result = volume
    elif unit_slope and np.all(intercepts == np.round(intercepts)) and volume.dtype.kind in "iu":
        low, high = _shifted_range(volume.dtype, intercepts)
        if np.iinfo(np.int16).min <= low and high <= np.iinfo(np.int16).max:
            result = volume.astype(np.int16)  # every value fits: no int64 pass, no min/max scan
            np.add(result, intercepts.astype(np.int16), out=result)
        else:
            result = _narrowest_int(volume.astype(np.int64) + intercepts.astype(np.int64))
    else:  # one float32 copy, scaled and shifted in place
        result = volume.astype(np.float32)
        np.multiply(result, slopes.astype(np.float32), out=result)
        np.add(result, intercepts.astype(np.float32), out=result)
    if result.dtype.kind == "f":
        _refuse_non_finite(result, bound, label, exam)
    return result


def _refuse_non_finite(result: np.ndarray, bound: float | None, label: str, exam: str | None) -> None:
    """Refuse NaN or infinite voxels. Integer stored values times a finite slope cannot leave
    float32's range below ``bound``, so only float input (or an extreme slope) needs the scan."""
    if (bound is None or bound >= _FLOAT32_SAFE) and not np.all(np.isfinite(result)):
        count = int(np.count_nonzero(~np.isfinite(result)))
        reason = f"{count} voxel value(s) are not finite (NaN or infinity)"
        raise series_refusal(label, reason, exam=exam)


def rescale_values(
    datasets: Sequence[Any], label: str, exam: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice (slope, intercept) of single-frame instances (1 and 0 when absent)."""
    try:
        slopes = np.array([float(ds.get("RescaleSlope", 1.0) or 1.0) for ds in datasets])
        intercepts = np.array([float(ds.get("RescaleIntercept", 0.0) or 0.0) for ds in datasets])
    except READ_ERRORS as exc:
        reason = f"unreadable RescaleSlope/RescaleIntercept ({exc})"
        raise series_refusal(label, reason, exam=exam) from exc
    return slopes, intercepts


def _decoded(
    ds: Any, index: int, label: str, exam: str | None, *, ndim: int = 2
) -> np.ndarray:
    name = _instance_name(ds, index)
    if not has_pixel_data(ds):
        reason = f"instance {name} has no pixel data"
        raise series_refusal(label, reason, exam=exam)
    try:
        view = getattr(ds, "pixel_view", None)  # an indexed instance's bytes, without a copy
        raw = view() if callable(view) else ds.get("PixelData")
        # pydicom gives None for a Pixel Data element of length 0 read from bytes, b"" in memory
        if (len(raw) == 0) if raw is not None else "PixelData" in ds:
            reason = f"instance {name} has empty (zero-length) pixel data"
            raise series_refusal(label, reason, exam=exam)
        pixels = _native_frame(ds, raw) if ndim == 2 else None
        if pixels is None:
            pixels = ds.pixel_array
    except DECODE_ERRORS as exc:
        syntax = _transfer_syntax_name(ds)
        reason = f"the pixel data of instance {name} cannot be decoded ({syntax}): {exc}"
        raise series_refusal(
            label, reason, exam=exam, detail=f"{type(exc).__name__}: {exc}"
        ) from exc
    except BaseException as exc:
        # Decoders written in Rust (pylibjpeg-rle, through pyo3) "panic" on some malformed
        # data with pyo3's PanicException, a BaseException: neither pydicom nor an
        # ``except Exception`` stops it. Refuse the series; re-raise anything else.
        if type(exc).__name__ != _PYO3_PANIC:
            raise
        syntax = _transfer_syntax_name(ds)
        reason = f"the pixel data of instance {name} crashed the decoder ({syntax}): {exc}"
        raise series_refusal(label, reason, exam=exam, detail=f"PanicException: {exc}") from exc
    if pixels.ndim != ndim:
        reason = f"instance {name} decodes to an array of shape {pixels.shape}, not {ndim}D"
        raise series_refusal(label, reason, exam=exam)
    return pixels


def _native_frame(ds: Any, raw: Any) -> np.ndarray | None:
    """The single frame of uncompressed little-endian pixel data read straight from its bytes
    (what ``pixel_array`` returns, without its per-call machinery), or None to let pydicom decode:
    other syntaxes, colour, multi-frame, or a length that is not exactly one frame (pydicom then
    names the problem). With BitsStored < BitsAllocated (12 of 16 bits, common in vendor MR) the
    unused high bits are cleared (unsigned) or filled with the sign (signed) by shifting left then
    right, as pydicom's ``pixel_array`` does by default (its ``correct_unused_bits``)."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or str(meta.get("TransferSyntaxUID", "")) not in _NATIVE_SYNTAXES:
        return None
    if not isinstance(raw, bytes | memoryview) or ds.get("SamplesPerPixel", 1) not in (1, None):
        return None
    if ds.get("NumberOfFrames") not in (None, "", 1, "1"):
        return None
    bits, stored, sign = ds.get("BitsAllocated"), ds.get("BitsStored"), ds.get("PixelRepresentation", 0)
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if bits not in (8, 16, 32) or sign not in (0, 1) or not rows or not columns:
        return None
    if not isinstance(stored, int) or not 1 <= stored <= bits:
        return None
    size = int(rows) * int(columns) * (bits // 8)
    if len(raw) not in (size, size + 1):  # one pad byte makes an odd length even
        return None
    dtype = np.dtype(f"<{'i' if sign else 'u'}{bits // 8}")
    frame = np.frombuffer(raw, dtype=dtype, count=int(rows) * int(columns)).reshape(int(rows), int(columns))
    if stored < bits:  # a new array: the instance's bytes stay as they are
        unused = bits - stored
        frame = np.right_shift(np.left_shift(frame, unused), unused)
    return frame


def _magnitude_bound(dtype: np.dtype, slopes: np.ndarray, intercepts: np.ndarray) -> float | None:
    """The largest |stored * slope + intercept| an integer dtype allows (None for float data)."""
    if dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    return max(abs(int(info.min)), int(info.max)) * float(np.max(np.abs(slopes))) + float(
        np.max(np.abs(intercepts)))


def _shifted_range(dtype: np.dtype, intercepts: np.ndarray) -> tuple[int, int]:
    """The range of integer stored values plus the (integer) intercepts."""
    info = np.iinfo(dtype)
    return int(info.min) + int(np.min(intercepts)), int(info.max) + int(np.max(intercepts))


def _narrowest_int(values: np.ndarray) -> np.ndarray:
    for dtype in (np.int16, np.int32):
        info = np.iinfo(dtype)
        if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
            return values.astype(dtype)
    return values


def _instance_name(ds: Any, index: int) -> str:
    number = text_value(ds, "InstanceNumber")
    return f"#{number}" if number else f"at position {index + 1}"


def _transfer_syntax_name(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return getattr(uid, "name", str(uid)) if uid is not None else "unknown transfer syntax"
