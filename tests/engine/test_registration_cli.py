"""``gliowatch register FIXED MOVING --out T.json``: real DICOM series in, known transform out."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from engine.registration.geometry import LPS_FROM_RAS, displacement_error_mm, rigid_matrix, volume_center_mm
from engine.registration.phantom import Template, acquire, load_template
from engine.types import Volume
from flows.cli import main

SPACING_MM = 4.0


def write_dicom_series(volume: Volume, folder: Path, *, study_uid: str, description: str) -> None:
    """One MR series whose geometry is exactly ``volume.affine`` (RAS) expressed in DICOM (LPS)."""
    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS_FROM_RAS @ volume.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    orientation = [*(lps[:3, 0] / spacing[0]), *(lps[:3, 1] / spacing[1])]
    lo, hi = float(volume.array.min()), float(volume.array.max())
    slope = (hi - lo) / 4000.0 if hi > lo else 1.0
    series_uid = generate_uid()
    for k in range(volume.array.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"IM{k:04d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientID, ds.PatientName = "REG-TEST", "SYNTHETIC^REG"
        ds.StudyDate = ds.SeriesDate = date(2025, 1, 2).strftime("%Y%m%d")
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "MR", description, 5, k + 1
        ds.MRAcquisitionType = "2D"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in orientation]
        ds.ImagePositionPatient = [round(float(v), 6) for v in (lps @ [0.0, 0.0, k, 1.0])[:3]]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]  # row spacing (along j), column spacing (along i)
        ds.SliceThickness = ds.SpacingBetweenSlices = float(spacing[2])
        ds.Rows, ds.Columns = volume.array.shape[1], volume.array.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, lo
        stored = np.rint((volume.array[:, :, k].T - lo) / slope).clip(0, 65535).astype(np.uint16)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(spacing_mm=SPACING_MM)


@pytest.fixture(scope="module")
def series(template: Template, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("register")
    center = volume_center_mm(template.image.affine, template.image.array.shape)
    truth = rigid_matrix(rotation_deg=(4.0, 2.0, -6.0), translation_mm=(5.0, 3.0, -4.0), center_mm=center)
    rng = np.random.default_rng(21)
    extent = (180.0, 210.0, 170.0)
    fixed, _ = acquire(image=template.image, truth=np.eye(4), spacing_mm=(SPACING_MM,) * 3, extent_mm=extent,
                       noise_sd=0.02, rng=rng, dicom_axial=True)  # fmt: skip
    moving, _ = acquire(image=template.image, truth=truth, spacing_mm=(SPACING_MM, SPACING_MM, 6.0),
                        extent_mm=extent, noise_sd=0.02, rng=rng, dicom_axial=True)  # fmt: skip
    turned = rigid_matrix(rotation_deg=(0.0, 0.0, 90.0), center_mm=center)
    flipped, _ = acquire(image=template.image, truth=turned, spacing_mm=(SPACING_MM,) * 3, extent_mm=extent,
                         noise_sd=0.02, rng=rng, dicom_axial=True)  # fmt: skip
    study_uid = generate_uid()
    for name, vol in (("fixed", fixed), ("moving", moving), ("turned", flipped)):
        write_dicom_series(vol, root / name, study_uid=study_uid, description=f"AX T1 POST GD {name}")
    return {"root": root, "truth": truth}


def test_register_writes_the_moving_to_fixed_matrix(series: dict, template: Template) -> None:
    root, out = series["root"], series["root"] / "out" / "transform.json"
    code = main(["register", str(root / "fixed"), str(root / "moving"), "--out", str(out), "--device", "cpu"])
    assert code == 0
    record = json.loads(out.read_text())
    matrix = np.asarray(record["matrix"])
    err = displacement_error_mm(estimated=matrix, truth=series["truth"], points_mm=template.brain_points_mm())
    assert err.mean() <= 0.5, f"mean error {err.mean():.3f} mm"
    assert err.max() <= 1.0, f"max error {err.max():.3f} mm"
    assert record["passed"] is True
    assert record["method"] == "sitk-mattes-rigid"
    assert {"rotation_deg", "translation_mm", "similarity", "final_metric", "qc_reason"} <= record.keys()


def test_register_refuses_to_overwrite_without_force(series: dict, capsys: pytest.CaptureFixture[str]) -> None:
    root = series["root"]
    out = root / "exists.json"
    out.write_text("{}")
    code = main(["register", str(root / "fixed"), str(root / "moving"), "--out", str(out)])
    assert code == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "{}"


def test_failed_registration_exits_1_and_still_writes_json(series: dict, capsys: pytest.CaptureFixture[str]) -> None:
    root = series["root"]
    out = root / "turned.json"
    code = main(["register", str(root / "fixed"), str(root / "turned"), "--out", str(out), "--device", "cpu"])
    assert code == 1
    assert "failed its quality check" in capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["passed"] is False
    assert record["qc_reason"].startswith("QC failed")


def test_dicom_writer_round_trips_through_engine_dicom(series: dict) -> None:
    from engine.dicom import read_series_dir

    volume = read_series_dir(series["root"] / "moving")
    first = pydicom.dcmread(sorted((series["root"] / "moving").glob("*.dcm"))[0])
    assert volume.array.shape[2] == len(list((series["root"] / "moving").glob("*.dcm")))
    ras_origin = (LPS_FROM_RAS @ [*map(float, first.ImagePositionPatient), 1.0])[:3]
    np.testing.assert_allclose(volume.affine[:3, 3], ras_origin, atol=1e-3)
