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


def write_non_image_objects(folder: Path, images: list[Path]) -> dict[str, Path]:
    """A SEG, an SR and a grayscale presentation state (highdicom) that reference ``images``.

    The SEG and the SR get series of their own under ``folder``; the presentation state goes
    into the image series itself (as some archives file it), in a file named to sort first.
    Returns the path of each object keyed by ``SEG``, ``SR`` and ``PR``.
    """
    sources = _highdicom_sources(images)
    targets = {"SEG": folder / "SEG" / "seg.dcm", "SR": folder / "SR" / "sr.dcm",
               "PR": images[0].parent / "0000_pr.dcm"}
    for kind, build in (("SEG", _segmentation), ("SR", _report), ("PR", _presentation_state)):
        targets[kind].parent.mkdir(parents=True, exist_ok=True)
        build(sources).save_as(targets[kind], enforce_file_format=True)
    return targets


_EQUIPMENT = dict(manufacturer="GlioWatch", manufacturer_model_name="tests", software_versions="0",
                  device_serial_number="1")


def _highdicom_sources(images: list[Path]) -> list[pydicom.Dataset]:
    """The images sorted along z, with the type-2 attributes highdicom copies and write_series
    leaves out (in memory only)."""
    sources = sorted((pydicom.dcmread(p) for p in images), key=lambda ds: float(ds.ImagePositionPatient[2]))
    frame_of_reference_uid = generate_uid()
    for ds in sources:
        for keyword in ("PatientBirthDate", "PatientSex", "StudyTime", "StudyID", "AccessionNumber",
                        "ReferringPhysicianName"):
            setattr(ds, keyword, ds.get(keyword, ""))
        ds.FrameOfReferenceUID = ds.get("FrameOfReferenceUID", frame_of_reference_uid)
    return sources


def _segmentation(sources: list[pydicom.Dataset]) -> pydicom.Dataset:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    mask = np.zeros((len(sources), int(sources[0].Rows), int(sources[0].Columns)), dtype=bool)
    mask[1:3, 2:6, 2:6] = True
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="tumour",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=generate_uid(), series_number=90,
        sop_instance_uid=generate_uid(), instance_number=1, **_EQUIPMENT,
    )


def _report(sources: list[pydicom.Dataset]) -> pydicom.Dataset:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid())
    observer = hd.sr.ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=device)
    lesion = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="lesion 1"),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=np.array([[float(v) for v in sources[0].ImagePositionPatient]]),
            frame_of_reference_uid=sources[0].FrameOfReferenceUID,
        ),
    )
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.BrainMRI, imaging_measurements=[lesion],
    )
    return hd.sr.Comprehensive3DSR(
        evidence=sources, content=content, series_instance_uid=generate_uid(), series_number=91,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="GlioWatch",
    )


def _presentation_state(sources: list[pydicom.Dataset]) -> pydicom.Dataset:
    import highdicom as hd

    window = hd.pr.SoftcopyVOILUTTransformation(window_center=500.0, window_width=800.0)
    return hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=sources, series_instance_uid=sources[0].SeriesInstanceUID, series_number=92,
        sop_instance_uid=generate_uid(), instance_number=1, content_label="WINDOW",
        voi_lut_transformations=[window], **_EQUIPMENT,
    )
