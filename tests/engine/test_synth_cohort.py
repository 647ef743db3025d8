"""The written cohort: layout, DICOM tags and geometry, truth against the images, poses,
determinism. One test-size cohort (1 patient, 3 visits) is generated once through the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from engine.modelling.synth import generate_cohort
from engine.modelling.synth.anatomy import Tissue, build_head
from engine.modelling.synth.cohort import patient_model
from engine.modelling.synth.scenarios import Scenario
from engine.types import Label
from flows.cli import main

SEED = 11
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "synth"
    rc = main(["synth", "--patients", "1", "--out", str(out), "--seed", str(SEED),
               "--size", "test"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def manifest(cohort: Path) -> dict:
    return json.loads((cohort / "cohort.json").read_text())


def read_series(folder: Path) -> tuple[np.ndarray, np.ndarray, list[pydicom.Dataset]]:
    """(array [i, j, k] in real units, RAS affine, datasets sorted along the slice normal)."""
    datasets = [pydicom.dcmread(f) for f in sorted(folder.glob("*.dcm"))]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    datasets.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    slope = float(datasets[0].RescaleSlope)
    array = np.stack([d.pixel_array.T.astype(float) * slope for d in datasets], axis=-1)
    between_rows, between_cols = (float(v) for v in datasets[0].PixelSpacing)
    first = np.array(datasets[0].ImagePositionPatient, dtype=float)
    last = np.array(datasets[-1].ImagePositionPatient, dtype=float)
    lps = np.eye(4)
    lps[:3, 0] = row * between_cols
    lps[:3, 1] = col * between_rows
    lps[:3, 2] = (last - first) / max(len(datasets) - 1, 1)
    lps[:3, 3] = first
    return array, LPS_TO_RAS @ lps, datasets


def visit_series(cohort: Path, visit: dict, sequence: str) -> Path:
    return cohort / next(s["dir"] for s in visit["series"] if s["sequence"] == sequence)


def test_layout_and_manifest(cohort: Path, manifest: dict) -> None:
    assert manifest["generator"] == "gliowatch-synth"
    assert manifest["seed"] == SEED and manifest["size"] == "test"
    (patient,) = manifest["patients"]
    assert patient["patient_id"] == "GW-SYN-0001"
    assert patient["scenario"] in {s.value for s in Scenario}
    assert [v["phase"] for v in patient["visits"]] == ["PRE_OP", "POST_OP", "POST_RT"]
    dates = [v["study_date"] for v in patient["visits"]]
    assert dates == sorted(dates) and patient["surgery_date"] < dates[1]
    assert patient["rt_start_date"] < patient["rt_end_date"] < dates[2]
    for visit in patient["visits"]:
        assert sorted(s["sequence"] for s in visit["series"]) == ["FLAIR", "T1", "T1c", "T2"]
        assert (cohort / visit["truth"]["labels"]).is_file()
        assert set(visit["truth"]["volumes_ml"]) == {"NETC", "SNFH", "ET", "RC"}
        assert (cohort / visit["dir"] / "truth" / "truth.json").is_file()
    assert patient["visits"][0]["truth"]["volumes_ml"]["RC"] == 0.0
    assert patient["visits"][1]["truth"]["volumes_ml"]["RC"] > 1.0


def test_cohort_visits_list_each_study_with_its_dicom_files_and_truth(cohort: Path, manifest: dict,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from engine.dicom import read_study_files
    from engine.modelling.synth import cohort_visits

    visits = list(cohort_visits(cohort))
    (patient,) = manifest["patients"]
    assert [(v.patient_index, v.visit_index, v.study, v.phase) for v in visits] == [
        (0, i, e["dir"], e["phase"]) for i, e in enumerate(patient["visits"])]
    assert all(v.scenario == patient["scenario"] and v.truth_labels.is_file() for v in visits)
    assert visits[1].true_ml == patient["visits"][1]["truth"]["volumes_ml"]
    files = visits[0].dicom_files()
    assert files and all(f.suffix == ".dcm" for f in files)
    assert not any("truth" in f.parts for f in files)  # the truth folder beside the series is left out
    with caplog.at_level("INFO", logger="engine.dicom.reader"):
        read = read_study_files(files)
    assert len(read.volumes) == 4 and not read.refused
    assert "not a readable DICOM" not in caplog.text


def test_clinical_events_csv(cohort: Path, manifest: dict, tmp_path: Path) -> None:
    from engine.modelling.synth.cohort import cohort_plans, write_clinical_events

    with (cohort / "clinical_events.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # the demo imports the events before the images exist: the plans alone give the same file
    n_visits = len(manifest["patients"][0]["visits"])
    write_clinical_events(tmp_path / "planned.csv", cohort_plans(n_patients=1, seed=SEED, n_visits=n_visits))
    assert (tmp_path / "planned.csv").read_text() == (cohort / "clinical_events.csv").read_text()
    assert list(rows[0]) == ["patient_id", "event_date", "event", "value"]
    events = {r["event"] for r in rows}
    assert {"SURGERY", "RT_START", "RT_END", "CHEMO_START", "STEROID_DOSE", "CLINICAL_STATUS",
            "MGMT", "IDH"} <= events
    visit_dates = {v["study_date"] for v in manifest["patients"][0]["visits"]}
    steroid_dates = {r["event_date"] for r in rows if r["event"] == "STEROID_DOSE"}
    assert steroid_dates == visit_dates
    surgery = next(r for r in rows if r["event"] == "SURGERY")
    assert surgery["value"] in {"GTR", "STR", "BIOPSY"}
    assert surgery["event_date"] == manifest["patients"][0]["surgery_date"]


def test_dicom_tags_are_realistic(cohort: Path, manifest: dict) -> None:
    visit = manifest["patients"][0]["visits"][0]
    seen_uids: set[str] = set()
    for series in visit["series"]:
        _, _, datasets = read_series(cohort / series["dir"])
        ds = datasets[0]
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage
        assert ds.Modality == "MR" and ds.PatientID == "GW-SYN-0001"
        assert str(ds.PatientName) == "SYNTHETIC^GW-SYN-0001"
        assert ds.StudyDate == visit["study_date"].replace("-", "")
        assert ds.StudyInstanceUID == visit["study_uid"]
        assert ds.SeriesInstanceUID == series["series_uid"]
        assert ds.SeriesDescription == series["description"]
        assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 0
        assert ds.Manufacturer in {"SIEMENS", "GE MEDICAL SYSTEMS", "Philips"}
        assert ds.MRAcquisitionType in {"2D", "3D"}
        assert float(ds.SliceThickness) > 0 and float(ds.SpacingBetweenSlices) > 0
        if series["sequence"] == "FLAIR":
            assert float(ds.InversionTime) > 1500
        if series["sequence"] == "T1c":
            assert ds.ContrastBolusAgent
        else:
            assert "ContrastBolusAgent" not in ds
        uids = {d.SOPInstanceUID for d in datasets}
        assert len(uids) == len(datasets) and not uids & seen_uids
        seen_uids |= uids


def test_dicom_geometry_matches_truth_grid(cohort: Path, manifest: dict) -> None:
    for visit in manifest["patients"][0]["visits"]:
        _, affine, datasets = read_series(visit_series(cohort, visit, "T1c"))
        labels = nib.load(cohort / visit["truth"]["labels"])
        assert labels.shape == (datasets[0].Columns, datasets[0].Rows, len(datasets))
        np.testing.assert_allclose(affine, labels.affine, atol=1e-4)
        step = float(datasets[0].SpacingBetweenSlices)
        normal = np.cross(*np.reshape(np.array(datasets[0].ImageOrientationPatient, float), (2, 3)))
        for k, ds in enumerate(datasets):
            expected = (labels.affine @ [0.0, 0.0, k, 1.0])[:3] * [-1.0, -1.0, 1.0]
            np.testing.assert_allclose(np.array(ds.ImagePositionPatient, float), expected,
                                       atol=1e-4)
            np.testing.assert_allclose(np.dot(normal, np.array(ds.ImagePositionPatient, float)),
                                       np.dot(normal, datasets[0].ImagePositionPatient) + k * step,
                                       atol=1e-3)


def test_truth_labels_sit_where_the_template_tumour_is(cohort: Path, manifest: dict) -> None:
    """World position of an ET voxel of the truth, mapped back through the head pose, is ET in
    the generator's template-space label field."""
    patient = manifest["patients"][0]
    head = build_head(spacing_mm=manifest["working_resolution_mm"])
    model = patient_model(seed=SEED, patient_index=0, scenario=Scenario(patient["scenario"]),
                          n_visits=len(patient["visits"]), head=head)
    from engine.modelling.synth.tumour import render

    for visit, plan in zip(patient["visits"], model.plan.visits, strict=True):
        truth = nib.load(cohort / visit["truth"]["labels"])
        labels = np.asarray(truth.dataobj)
        template_labels = render(model.field, plan.state).labels
        pose = np.array(visit["truth"]["head_pose"])
        for label in (Label.ET, Label.RC):
            deep = ndimage.binary_erosion(labels == label, iterations=1)
            if not deep.any():
                continue
            points = np.argwhere(deep)
            world = truth.affine @ np.c_[points, np.ones(len(points))].T
            template = np.linalg.inv(head.affine) @ np.linalg.inv(pose) @ world
            index = np.rint(template[:3]).astype(int)
            agree = template_labels[index[0], index[1], index[2]] == label
            assert agree.mean() > 0.9, (visit["phase"], label, agree.mean())


def test_pose_composition_and_bounds(manifest: dict) -> None:
    from engine.modelling.synth.pose import relative_pose, rotation_angle_deg

    visits = manifest["patients"][0]["visits"]
    poses = [np.array(v["truth"]["head_pose"]) for v in visits]
    q = np.array([12.0, -30.0, 25.0, 1.0])
    for pose in poses:
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6)
        assert rotation_angle_deg(pose) < 15.0
        assert np.all(np.abs(pose[:3, 3]) <= 10.0 + 1e-9)
    b_to_a = relative_pose(poses[0], poses[2])
    np.testing.assert_allclose(b_to_a @ (poses[2] @ q), poses[0] @ q, atol=1e-9)
    assert not np.allclose(poses[0], poses[1])


def test_cavity_stays_put_in_template_space_across_visits(cohort: Path, manifest: dict) -> None:
    """Post-op and post-RT cavities are the same tissue: mapped back through their poses
    their centroids agree although the head moved between the visits."""
    centroids = []
    for visit in manifest["patients"][0]["visits"][1:]:
        truth = nib.load(cohort / visit["truth"]["labels"])
        points = np.argwhere(np.asarray(truth.dataobj) == Label.RC)
        world = truth.affine @ np.append(points.mean(axis=0), 1.0)
        centroids.append(np.linalg.inv(np.array(visit["truth"]["head_pose"])) @ world)
    assert np.linalg.norm(centroids[0][:3] - centroids[1][:3]) < 3.0


def test_contrast_of_truth_regions_on_read_back_images(cohort: Path, manifest: dict) -> None:
    head = build_head(spacing_mm=manifest["working_resolution_mm"])
    from engine.modelling.synth.acquisition import AcquisitionGrid, Plane, resample

    for visit in manifest["patients"][0]["visits"][:2]:
        truth = nib.load(cohort / visit["truth"]["labels"])
        labels = np.asarray(truth.dataobj)
        grid = AcquisitionGrid(plane=Plane.AX, affine=truth.affine, shape=labels.shape,
                               slice_thickness_mm=1.0)
        pose = np.array(visit["truth"]["head_pose"])
        wm = resample(head.fractions[Tissue.WM], image_affine=head.affine,
                      world_to_image_space=np.linalg.inv(pose), grid=grid, slice_profile=False)
        white = (wm > 0.95) & (labels == 0)
        images = {}
        for sequence in ("T1c", "FLAIR"):
            array, affine, _ = read_series(visit_series(cohort, visit, sequence))
            index = np.linalg.inv(affine) @ truth.affine
            images[sequence] = ndimage.affine_transform(array, index[:3, :3], offset=index[:3, 3],
                                                        output_shape=labels.shape, order=1)
        et, snfh = labels == Label.ET, labels == Label.SNFH
        assert et.sum() > 5 and snfh.sum() > 5 and white.sum() > 50
        assert images["T1c"][et].mean() > 1.1 * images["T1c"][white].mean()
        assert images["FLAIR"][snfh].mean() > 1.2 * images["FLAIR"][white].mean()
        if visit["phase"] == "POST_OP":
            rc = ndimage.binary_erosion(labels == Label.RC)
            assert images["FLAIR"][rc].mean() < 0.6 * images["FLAIR"][white].mean()


def test_same_seed_same_bytes_and_uids(cohort: Path, tmp_path: Path) -> None:
    from engine.modelling.synth import cohort_visits
    from engine.modelling.synth.cohort import study_dicom_files

    told: list[list[Path]] = []  # on_visit: each study's files, as soon as it is written
    again = generate_cohort(n_patients=1, seed=SEED, out_dir=tmp_path / "again", size="test", on_visit=told.append)
    assert told == [study_dicom_files(again.parent, v.entry) for v in cohort_visits(again.parent)]
    assert all(files and all(f.is_file() for f in files) for files in told)
    first = sorted(p.relative_to(cohort) for p in cohort.rglob("*.dcm"))
    second = sorted(p.relative_to(again.parent) for p in again.parent.rglob("*.dcm"))
    assert first == second and len(first) > 50
    for rel in first[:: max(1, len(first) // 25)]:
        a, b = pydicom.dcmread(cohort / rel), pydicom.dcmread(again.parent / rel)
        assert a.PixelData == b.PixelData
        assert (a.SOPInstanceUID, a.SeriesInstanceUID, a.StudyInstanceUID) == (
            b.SOPInstanceUID, b.SeriesInstanceUID, b.StudyInstanceUID)
    assert json.loads((cohort / "cohort.json").read_text()) == json.loads(again.read_text())


def test_refuses_non_empty_output(cohort: Path) -> None:
    with pytest.raises(FileExistsError, match="must be empty"):
        generate_cohort(n_patients=1, seed=SEED, out_dir=cohort, size="test")


def test_upload_sends_studies_in_visit_order(cohort: Path, manifest: dict) -> None:
    from engine.modelling.synth.cohort import upload_in_visit_order

    sent: list[Path] = []
    count = upload_in_visit_order(cohort / "cohort.json", sent.append)
    assert count == len(sent) == len(list(cohort.rglob("*.dcm")))
    dates = [pydicom.dcmread(p, stop_before_pixels=True).StudyDate for p in sent[:: 7]]
    assert dates == sorted(dates)


def test_contact_sheet_png(cohort: Path, manifest: dict, artifacts_dir: Path) -> None:
    """Mid-tumour slices of each sequence per visit, for a person to look at."""
    from PIL import Image

    from engine.modelling.synth.preview import write_contact_sheet

    out = write_contact_sheet(cohort, "GW-SYN-0001", artifacts_dir / "synth_test_cohort.png",
                              pixel_mm=2.0)
    with Image.open(out) as image:
        width, height = image.size
    n_visits = len(manifest["patients"][0]["visits"])
    assert height == n_visits * 100 and width == 5 * 100


def test_itk_reads_the_same_geometry(cohort: Path, manifest: dict) -> None:
    """An independent DICOM reader (ITK/GDCM) agrees with the truth grid."""
    import SimpleITK as sitk

    for visit in manifest["patients"][0]["visits"]:
        folder = visit_series(cohort, visit, "T1c")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
        image = reader.Execute()
        lps = np.eye(4)
        lps[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) * np.array(image.GetSpacing())
        lps[:3, 3] = image.GetOrigin()
        truth = nib.load(cohort / visit["truth"]["labels"])
        assert image.GetSize() == truth.shape
        np.testing.assert_allclose(LPS_TO_RAS @ lps, truth.affine, atol=1e-3)


def test_ideal_segmenter_on_the_generator_grid_is_the_truth(manifest: dict) -> None:
    """On the generator's own grid (no pose, slices as thin as its voxels) the ideal segmenter of
    engine.modelling.synth.ceiling sees every membership exactly and reproduces the labels."""
    from engine.modelling.synth.acquisition import AcquisitionGrid, Plane
    from engine.modelling.synth.ceiling import observable_labels
    from engine.modelling.synth.tumour import render

    patient = manifest["patients"][0]
    head = build_head(spacing_mm=manifest["working_resolution_mm"])
    model = patient_model(seed=SEED, patient_index=0, scenario=Scenario(patient["scenario"]),
                          n_visits=len(patient["visits"]), head=head)
    maps = render(model.field, model.plan.visits[1].state)
    grid = AcquisitionGrid(plane=Plane.AX, affine=head.affine.copy(), shape=head.shape,
                           slice_thickness_mm=head.spacing_mm)
    ideal = observable_labels(maps, head=head, pose=np.eye(4), grid=grid)
    assert (ideal == maps.labels).mean() > 0.9999
    assert set(np.unique(ideal)) == set(np.unique(maps.labels))


def test_ceiling_of_each_study_matches_its_truth_but_for_partial_volume(cohort: Path, manifest: dict) -> None:
    """The ceiling on the T1c grid: the same study (dates checked), high Dice for large regions,
    and thicker slices can only lose thin structures (never a perfect match at 5 mm here)."""
    from engine.modelling.evaluation.metrics import region_dice
    from engine.modelling.synth.ceiling import cohort_ceiling_labels, t1c_slice_thickness_mm

    patient = manifest["patients"][0]
    for index, visit in enumerate(patient["visits"]):
        truth = np.asarray(nib.load(cohort / visit["truth"]["labels"]).dataobj).astype(np.uint8)
        thickness = t1c_slice_thickness_mm(cohort, visit)
        ideal = cohort_ceiling_labels(cohort / "cohort.json", 0, index, slice_thickness_mm=thickness)
        assert ideal.shape == truth.shape
        dice = region_dice(ideal, truth)
        assert dice["WT"] > 0.85, (visit["dir"], dice)
        assert dice["WT"] < 1.0  # the test size's 4 mm pixels blur every boundary
    broken = json.loads((cohort / "cohort.json").read_text())
    broken["patients"][0]["visits"][0]["study_date"] = "1999-01-01"
    wrong = cohort.parent / "wrong.json"
    wrong.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="not the generator that wrote it"):
        cohort_ceiling_labels(wrong, 0, 0, slice_thickness_mm=5.0)


@pytest.mark.parametrize(("argv", "message"), [
    (["synth", "--patients", "1", "--visits", "2"], "gliowatch synth: --visits must be at least 3 (pre-op, post-op, post-RT), not 2"),
    (["synth", "--patients", "0"], "gliowatch synth: --patients must be at least 1, not 0"),
    (["demo", "--visits", "2", "--no-wait"], "gliowatch demo: --visits must be at least 3"),
    (["demo", "--patients", "0", "--no-wait"], "gliowatch demo: --patients must be at least 1"),
])
def test_cohort_size_is_checked_before_any_work(argv: list[str], message: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A clear message and exit 2, not a traceback; nothing written, no Orthanc started, the previous
    demo state kept."""
    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state" / "demo").mkdir(parents=True)
    (tmp_path / "state" / "demo" / "kept").write_text("previous demo")
    out = tmp_path / "cohort"
    assert main([*argv, *(["--out", str(out)] if argv[0] == "synth" else [])]) == 2
    assert message in capsys.readouterr().out
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "state").rglob("*")) == ["demo", "kept"]
