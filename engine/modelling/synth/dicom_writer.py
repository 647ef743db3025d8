"""Write one synthetic MR series as single-frame DICOM files (MR Image Storage, explicit VR
little endian, 16-bit unsigned pixels).

Geometry: the RAS+ affine of the acquisition grid is turned into DICOM's LPS+ patient
coordinates (LPS = diag(-1, -1, 1) RAS). Slice k is written with ImagePositionPatient equal to
the world position of voxel (0, 0, k) and its pixel rows/columns along j/i.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from engine.modelling.synth.acquisition import AcquisitionGrid
from engine.modelling.synth.protocols import SeriesProtocol, Vendor

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: signal units: white matter on T1 (0.85) is stored around 1000.
_SIGNAL_SCALE = 1200.0


@dataclass(frozen=True, slots=True)
class SeriesHeader:
    """Identifiers of one series (UIDs are made by :func:`deterministic_uid`)."""

    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    study_date: dt.date
    study_time: str
    accession_number: str
    series_number: int
    uid_entropy: str  # seed + path, for the SOP instance UIDs


def deterministic_uid(*parts: object) -> str:
    """A UID that depends only on ``parts`` (seed, patient, visit, ...)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_series(
    *,
    image: np.ndarray,
    grid: AcquisitionGrid,
    protocol: SeriesProtocol,
    vendor: Vendor,
    header: SeriesHeader,
    out_dir: Path,
) -> list[Path]:
    """Write ``image`` (float signal on ``grid``) as one file per slice into ``out_dir``."""
    if image.shape != grid.shape:
        msg = f"Argument 'image' must have the grid's shape {grid.shape}, got {image.shape}"
        raise ValueError(msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    lps = RAS_TO_LPS @ grid.affine
    col_mm, row_mm = grid.pixel_spacing_mm
    row_dir = lps[:3, 0] / col_mm  # direction of increasing column index (along a row)
    col_dir = lps[:3, 1] / row_mm  # direction of increasing row index (down a column)
    normal = np.cross(row_dir, col_dir)
    stored = np.clip(np.rint(image * (_SIGNAL_SCALE / vendor.rescale_slope)), 0, 65535)
    stored = stored.astype(np.uint16)
    center, width = _window(stored)
    paths = []
    ds = _base_dataset(protocol, vendor, header, grid)  # one dataset, updated per slice
    ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
    ds.WindowCenter, ds.WindowWidth = _ds(center), _ds(width)
    ds.Rows, ds.Columns = grid.shape[1], grid.shape[0]
    for k in range(grid.shape[2]):
        position = (lps @ np.array([0.0, 0.0, float(k), 1.0]))[:3]
        sop_uid = deterministic_uid(header.uid_entropy, header.series_uid, k)
        ds.file_meta = _file_meta(sop_uid)
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceLocation = _ds(float(position @ normal))
        pixels = np.ascontiguousarray(stored[:, :, k].T)  # rows along j, columns along i
        ds.PixelData = pixels.tobytes()
        path = out_dir / f"IM{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _base_dataset(protocol: SeriesProtocol, vendor: Vendor, header: SeriesHeader,
                  grid: AcquisitionGrid) -> Dataset:
    ds = Dataset()
    date = header.study_date.strftime("%Y%m%d")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SOPClassUID = MRImageStorage
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = header.study_time
    ds.AccessionNumber = header.accession_number
    ds.Modality = "MR"
    ds.Manufacturer = vendor.manufacturer
    ds.ManufacturerModelName = vendor.model
    ds.InstitutionName = "GlioWatch Synthetic Imaging"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "MRI BRAIN TUMOUR FOLLOW-UP W/WO CONTRAST"
    ds.SeriesDescription = protocol.description
    ds.ProtocolName = protocol.description
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "BRAIN"
    ds.ScanningSequence = protocol.scanning_sequence.split("\\")
    ds.SequenceVariant = protocol.sequence_variant.split("\\")
    ds.ScanOptions = protocol.scan_options
    ds.MRAcquisitionType = protocol.mr_acquisition_type
    ds.SequenceName = protocol.sequence_name
    ds.SliceThickness = _ds(grid.slice_thickness_mm)
    ds.SpacingBetweenSlices = _ds(grid.slice_spacing_mm)
    ds.RepetitionTime = _ds(protocol.repetition_time_ms)
    ds.EchoTime = _ds(protocol.echo_time_ms)
    if protocol.inversion_time_ms is not None:
        ds.InversionTime = _ds(protocol.inversion_time_ms)
    ds.FlipAngle = _ds(protocol.flip_angle_deg)
    ds.EchoTrainLength = protocol.echo_train_length
    ds.MagneticFieldStrength = _ds(vendor.field_strength_t)
    ds.ImagingFrequency = _ds(42.577 * vendor.field_strength_t)
    ds.ImagedNucleus = "1H"
    if protocol.contrast_agent:
        ds.ContrastBolusAgent = protocol.contrast_agent
        ds.ContrastBolusVolume = "7.5"
    ds.PatientPosition = "HFS"
    ds.ReceiveCoilName = "Head_32" if vendor.field_strength_t >= 3 else "HEAD NV 16"
    ds.TransmitCoilName = "Body"
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.AcquisitionMatrix = [0, grid.shape[0], grid.shape[1], 0]
    ds.PercentPhaseFieldOfView = "100"
    ds.PixelBandwidth = "200" if protocol.mr_acquisition_type == "2D" else "240"
    ds.NumberOfAverages = "1"
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.StudyID = header.accession_number[-6:]
    ds.SeriesNumber = header.series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = header.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    col_mm, row_mm = grid.pixel_spacing_mm
    ds.PixelSpacing = [_ds(row_mm), _ds(col_mm)]  # (between rows, between columns)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = _ds(vendor.rescale_slope)
    ds.RescaleType = "US"
    return ds


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = deterministic_uid("gliowatch-synth", "implementation")
    meta.ImplementationVersionName = "GLIOWATCH_SYN"
    return meta


def _window(stored: np.ndarray) -> tuple[float, float]:
    values = stored[stored > 0]
    if values.size == 0:
        return 500.0, 1000.0
    low, high = np.percentile(values, [1.0, 99.5])
    return float((low + high) / 2.0), float(max(high - low, 1.0))


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return text[:16]
