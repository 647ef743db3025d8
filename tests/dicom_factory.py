"""Write small, valid MR series with pydicom for tests (known geometry, known tags)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

SEQUENCE_TAGS = {
    "T1": dict(description="AX T1 SE", tr=500.0, te=12.0, ti=None, contrast=None, ss="SE"),
    "T1c": dict(description="AX T1 POST GD", tr=500.0, te=12.0, ti=None, contrast="GADOLINIUM", ss="SE"),
    "T2": dict(description="t2_tse_tra", tr=4000.0, te=100.0, ti=None, contrast=None, ss="SE"),
    "FLAIR": dict(description="AX T2 FLAIR", tr=9000.0, te=120.0, ti=2500.0, contrast=None, ss="SE\\IR"),
}


def write_series(
    folder: Path,
    *,
    sequence: str,
    patient_id: str,
    study_uid: str,
    study_date: date,
    shape: tuple[int, int, int] = (16, 16, 8),
    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 3.0),
    origin_lps: tuple[float, float, float] = (-16.0, -16.0, -12.0),
    patient_name: str = "SYNTHETIC^TEST",
    seed: int = 0,
    series_uid: str | None = None,
) -> list[Path]:
    """One axial series, slice k at origin + k*spacing_z along +z (LPS). Returns the file paths."""
    tags = SEQUENCE_TAGS[sequence]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    cols, rows, nz = shape
    paths = []
    for k in range(nz):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"IM{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.PatientID = patient_id
        ds.PatientName = patient_name
        ds.StudyDate = study_date.strftime("%Y%m%d")
        ds.SeriesDate = ds.StudyDate
        ds.Modality = "MR"
        ds.Manufacturer = "SIEMENS"
        ds.SeriesDescription = tags["description"]
        ds.ProtocolName = tags["description"]
        ds.ScanningSequence = tags["ss"]
        ds.SequenceVariant = "SK"
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = tags["tr"]
        ds.EchoTime = tags["te"]
        if tags["ti"]:
            ds.InversionTime = tags["ti"]
        if tags["contrast"]:
            ds.ContrastBolusAgent = tags["contrast"]
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SeriesNumber = {"T1": 2, "T1c": 5, "T2": 3, "FLAIR": 4}[sequence]
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin_lps[0], origin_lps[1], origin_lps[2] + k * spacing_mm[2]]
        ds.PixelSpacing = [spacing_mm[1], spacing_mm[0]]
        ds.SliceThickness = spacing_mm[2]
        ds.SpacingBetweenSlices = spacing_mm[2]
        ds.Rows = rows
        ds.Columns = cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        pixels = rng.integers(100, 1000, size=(rows, cols), dtype=np.uint16)
        ds.PixelData = pixels.tobytes()
        path = folder / f"IM{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_study(
    folder: Path,
    *,
    patient_id: str,
    study_date: date,
    sequences: tuple[str, ...] = ("T1", "T1c", "T2", "FLAIR"),
    seed: int = 0,
    **kwargs: object,
) -> tuple[str, list[Path]]:
    """A study with the given sequences; returns (StudyInstanceUID, files)."""
    study_uid = generate_uid()
    files: list[Path] = []
    for i, seq in enumerate(sequences):
        files += write_series(folder / seq, sequence=seq, patient_id=patient_id, study_uid=study_uid,
                              study_date=study_date, seed=seed + i, **kwargs)  # type: ignore[arg-type]
    return study_uid, files


def read_back(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
