"""Read DICOM instances from files or bytes and group them by series.

Reading parses the header and keeps the (possibly compressed) pixel bytes; pixels are decoded
later, by :func:`engine.dicom.volume.assemble_volume`, where decode errors become refusals.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

from engine.dicom.part10_index import index_part10, index_part10_file
from engine.errors import DicomError

log = logging.getLogger(__name__)

#: what pydicom raises on malformed input, when reading a file or when an element is first
#: converted on access (it has no single base class for these).
READ_ERRORS: tuple[type[BaseException], ...] = (
    InvalidDicomError,
    BytesLengthException,
    EOFError,
    OSError,
    ValueError,
    TypeError,
    ArithmeticError,  # OverflowError from e.g. IS '1e999'
    LookupError,
    AttributeError,
    NotImplementedError,
    struct.error,
)
#: SOP classes that describe media, not images (DICOMDIR).
_DIRECTORY_SOP_CLASSES = frozenset({"1.2.840.10008.1.3.10"})


def load_dataset_files(paths: Iterable[Path | str]) -> list[Dataset]:
    """Read every DICOM file in ``paths``; files that are not DICOM are skipped and logged.

    Uncompressed little-endian files are indexed (:mod:`engine.dicom.part10_index`), the others
    read by ``pydicom.dcmread``; both give the same values.

    Raises :class:`DicomError` naming the files when none of them could be read.
    """
    datasets: list[Dataset] = []
    failures: list[str] = []
    for path in paths:
        path = Path(path)
        try:
            ds = index_part10_file(path) or pydicom.dcmread(path)
        except READ_ERRORS as exc:
            log.info("skipping %s: not a readable DICOM file (%s)", path, exc)
            failures.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        if _is_directory_record(ds):
            log.info("skipping %s: a DICOMDIR, not an image", path)
            continue
        datasets.append(ds)
    if not datasets and failures:
        shown = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
        msg = f"None of the {len(failures)} file(s) is a readable DICOM file ({shown})"
        raise DicomError(
            msg,
            action="Check that the folder holds DICOM files (Part 10, with the DICM preamble).",
            detail="\n".join(failures),
        )
    return datasets


def datasets_from_bytes(blobs: Iterable[bytes]) -> list[Dataset]:
    """Parse DICOM Part 10 byte strings (e.g. instances downloaded from Orthanc).

    Unlike :func:`load_dataset_files` every blob must parse: an archive that serves a
    non-DICOM instance is an error, raised as :class:`DicomError` with the blob's position.
    Uncompressed little-endian instances are indexed (:mod:`engine.dicom.part10_index`: the same
    values, converted on access); any other blob is read by ``pydicom.dcmread``.
    """
    datasets: list[Dataset] = []
    for index, blob in enumerate(blobs):
        try:
            datasets.append(index_part10(blob) or pydicom.dcmread(BytesIO(blob)))
        except READ_ERRORS as exc:
            msg = f"Instance #{index + 1} ({len(blob)} bytes) is not a readable DICOM file"
            raise DicomError(
                msg,
                action="Check the instance in the archive; it may be truncated or not DICOM.",
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
    return datasets


def group_by_series(datasets: Sequence[Dataset]) -> dict[str, list[Dataset]]:
    """Datasets keyed by SeriesInstanceUID, in first-seen order (``""`` when the UID is absent)."""
    groups: dict[str, list[Dataset]] = {}
    for ds in datasets:
        groups.setdefault(text_value(ds, "SeriesInstanceUID"), []).append(ds)
    return groups


def text_value(ds: Any, keyword: str) -> str:
    """A header value as stripped text; ``""`` when absent or unreadable (malformed element)."""
    try:
        value = ds.get(keyword)
    except READ_ERRORS:
        return ""
    return str(value).strip() if value not in (None, "") else ""


def dicom_files_under(folder: Path | str) -> list[Path]:
    """Every regular file under ``folder`` (recursively, sorted), hidden files excluded."""
    folder = Path(folder)
    if not folder.is_dir():
        msg = f"DICOM folder {folder} does not exist or is not a folder"
        raise DicomError(msg, action="Give the path of a folder that holds the DICOM files.")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _is_directory_record(ds: Dataset) -> bool:
    sop_class = str(ds.get("SOPClassUID", "") or "")
    media_class = str(getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID", "") or "")
    return sop_class in _DIRECTORY_SOP_CLASSES or media_class in _DIRECTORY_SOP_CLASSES
