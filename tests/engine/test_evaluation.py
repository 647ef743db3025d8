"""`gliowatch evaluate`: dataset discovery, label conventions, scores of known geometry, the report."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from engine.modelling.evaluation.agreement import icc_absolute_agreement, volume_agreement
from engine.modelling.evaluation.dataset import EvaluationInputError, discover_cases, reference_labels
from engine.modelling.evaluation.scoring import HD95_PENALTY_MM, score_labels
from engine.segmentation.model_config import model_config_from_dict
from engine.segmentation.network import build_network, save_weights_fp16
from engine.types import Label, Sequence, Volume
from flows.cli import main
from test_segmentation_phantom import tiny_config

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _save(array: np.ndarray, path, affine: np.ndarray = AFFINE) -> None:
    nib.save(nib.Nifti1Image(array, affine), path)


def _head(shape=(40, 44, 36)) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Four sequences of an ellipsoidal head with a bright (FLAIR) lesion holding an enhancing
    core, and its labels in BraTS 2021 numbering (2 oedema, 4 enhancing)."""
    grid = np.indices(shape).astype(np.float32)
    centre = (np.array(shape) / 2.0)[:, None, None, None]
    r = np.sqrt((((grid - centre) / (np.array(shape)[:, None, None, None] * 0.42)) ** 2).sum(0))
    lesion = np.sqrt(((grid - centre - np.array([5, 4, 0])[:, None, None, None]) ** 2).sum(0))
    head = (r < 1).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    labels[(lesion < 6) & (r < 1)] = 2
    labels[(lesion < 3) & (r < 1)] = 4
    rng = np.random.default_rng(0)
    images = {}
    for name, (brain, oedema, core) in {"t1n": (300, 250, 280), "t1c": (320, 260, 700),
                                         "t2w": (200, 420, 380), "t2f": (250, 520, 450)}.items():
        image = head * brain + (labels == 2) * (oedema - brain) + (labels == 4) * (core - brain)
        images[name] = (image + rng.normal(0, 5, shape) * head).astype(np.float32)
    return images, labels


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    """Three cases: BraTS names with a BraTS 2021 reference; plain names, FLAIR missing, no
    reference; and a case whose T1c file is not a NIfTI image."""
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "data"
    images, labels = _head()
    first = data / "Case-00001-000"
    first.mkdir(parents=True)
    for name, image in images.items():
        _save(image, first / f"Case-00001-000-{name}.nii.gz")
    _save(labels, first / "Case-00001-000-seg.nii.gz")
    second = data / "plain"
    second.mkdir()
    for name, plain in (("t1n", "t1"), ("t1c", "t1c"), ("t2w", "t2")):
        _save(images[name], second / f"{plain}.nii.gz")
    broken = data / "broken"
    broken.mkdir()
    (broken / "broken-t1c.nii.gz").write_bytes(b"not a nifti file")
    _save(images["t2f"], broken / "broken-t2f.nii.gz")
    model = root / "model"
    model.mkdir()
    config = model_config_from_dict(tiny_config("tiny-evaluate", spacing_mm=4.0), model_dir=model)
    torch.manual_seed(0)
    save_weights_fp16(build_network(config), model / "model.pt")
    (model / "config.json").write_text(json.dumps(config.to_json()))
    settings = root / "gliowatch.toml"
    settings.write_text('[segmentation]\ndevice = "cpu"\n')
    return data, model, settings, labels


def test_cases_are_found_by_brats_and_plain_names(dataset) -> None:
    data, *_ = dataset
    cases = {c.name: c for c in discover_cases(data)}
    assert set(cases) == {"Case-00001-000", "plain", "broken"}
    assert set(cases["Case-00001-000"].sequences) == {Sequence.T1, Sequence.T1C, Sequence.T2, Sequence.FLAIR}
    assert cases["Case-00001-000"].reference.name == "Case-00001-000-seg.nii.gz"
    assert set(cases["plain"].sequences) == {Sequence.T1, Sequence.T1C, Sequence.T2}
    assert cases["plain"].reference is None


def test_a_case_with_two_files_for_one_sequence_is_reported_not_guessed(tmp_path) -> None:
    case = tmp_path / "c"
    case.mkdir()
    for name in ("c-t1c.nii.gz", "t1c.nii.gz"):
        _save(np.zeros((4, 4, 4), np.float32), case / name)
    (found,) = discover_cases(case)
    assert "two T1c files" in found.problem


def test_a_missing_dataset_folder_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(EvaluationInputError, match="does not exist"):
        discover_cases(tmp_path / "nowhere")


@pytest.mark.parametrize(("convention", "raw", "expected"), [
    ("brats2021", [0, 1, 2, 4], [0, Label.NETC, Label.SNFH, Label.ET]),
    ("brats2015", [0, 1, 2, 3, 4], [0, Label.NETC, Label.SNFH, Label.NETC, Label.ET]),
    ("brats2024", [0, 1, 2, 3, 4], [0, Label.NETC, Label.SNFH, Label.ET, Label.RC]),
    ("auto", [0, 1, 2, 4], [0, Label.NETC, Label.SNFH, Label.ET]),
    ("auto", [0, 2, 3], [0, Label.SNFH, Label.ET]),
])
def test_reference_conventions_map_to_gliowatch_labels(convention, raw, expected) -> None:
    out, _ = reference_labels(Volume(np.array(raw, np.int16).reshape(1, 1, -1), np.eye(4)),
                              convention=convention, case="c")
    assert out.ravel().tolist() == [int(v) for v in expected]


def test_a_reference_value_outside_its_convention_is_refused() -> None:
    with pytest.raises(EvaluationInputError, match=r"values \[3\] that brats2021 does not define"):
        reference_labels(Volume(np.array([[[0, 3]]], np.uint8), np.eye(4)), convention="brats2021", case="c")


def test_scores_of_known_geometry() -> None:
    """Reference: an 8-voxel ET cube and a separate 8-voxel SNFH cube. Prediction: the ET cube
    shifted by one voxel (half overlap) plus a false ET voxel far away; no SNFH."""
    ref = np.zeros((20, 20, 20), np.uint8)
    ref[2:4, 2:4, 2:4] = Label.ET
    ref[10:12, 10:12, 10:12] = Label.SNFH
    pred = np.zeros_like(ref)
    pred[3:5, 2:4, 2:4] = Label.ET
    pred[18, 18, 18] = Label.ET
    scores = score_labels(pred, ref, spacing_mm=(1.0, 1.0, 2.0))
    et = scores["ET"]
    assert et.dice == pytest.approx(2 * 4 / (9 + 8))
    assert (et.lesions_tp, et.lesions_fp, et.lesions_fn) == (1, 1, 0)
    assert et.lesion_dice == pytest.approx((2 * 4 / 16) / 2)  # matched Dice 0.5, one false lesion
    assert et.reference_ml == pytest.approx(8 * 2 / 1000)
    snfh = scores["SNFH"]
    assert (snfh.dice, snfh.hd95_mm, snfh.lesions_fn) == (0.0, HD95_PENALTY_MM, 1)
    assert scores["RC"].dice == 1.0 and scores["RC"].hd95_mm == 0.0  # both empty: the BraTS convention


def test_volume_agreement_and_icc() -> None:
    v = volume_agreement([12.0, 22.0, 32.0, 42.0], [10.0, 20.0, 30.0, 40.0])
    assert (v.bias_ml, v.sd_ml) == (2.0, 0.0)
    assert v.icc < 1.0
    assert icc_absolute_agreement([1.0, 5.0, 9.0], [1.0, 5.0, 9.0]) == pytest.approx(1.0)
    assert math.isnan(volume_agreement([1.0], [1.0]).bias_ml)


def test_evaluate_writes_the_report_and_reports_a_broken_case(dataset, tmp_path, capsys) -> None:
    data, model, settings, labels = dataset
    out = tmp_path / "report"
    code = main(["--config", str(settings), "evaluate", str(data), "--out", str(out), "--model", str(model)])
    assert code == 1  # one case could not be read; the others ran
    cases = pd.read_csv(out / "cases.csv").set_index("case")
    assert cases.loc["Case-00001-000", "status"] == "scored"
    assert cases.loc["Case-00001-000", "labels"] == "brats2021"
    assert cases.loc["Case-00001-000", "ref_ET_ml"] == pytest.approx((labels == 4).sum() * 8 / 1000)
    assert 0.0 <= cases.loc["Case-00001-000", "WT_dice"] <= 1.0
    assert math.isnan(cases.loc["Case-00001-000", "RC_dice"])  # BraTS 2021 cannot label a cavity
    assert cases.loc["plain", "status"] == "unlabelled"
    assert "missing_sequence:FLAIR" in cases.loc["plain", "flags"]
    assert cases.loc["broken", "status"] == "error"
    assert "broken-t1c.nii.gz cannot be read" in cases.loc["broken", "reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert [(m["model_name"], m["cases"]) for m in summary["models"]] == [("tiny-evaluate", 2)]
    assert cases.loc["plain", "model"] == "tiny-evaluate 0.0.1"
    assert summary["cases"]["scored"] == 1 and summary["cases"]["unlabelled"] == 1
    assert summary["cases"]["errors"][0]["case"] == "broken"
    assert summary["regions"]["WT"]["dice"]["n"] == 1
    assert summary["regions"]["RC"]["dice"]["n"] == 0
    for name in ("summary.png", "sheets/Case-00001-000.png", "sheets/plain.png", "labels/plain.nii.gz"):
        assert (out / name).stat().st_size > 0, name
    assert "Case-00001-000: Dice WT" in capsys.readouterr().out
    # the report folder is not overwritten by accident
    assert main(["--config", str(settings), "evaluate", str(data), "--out", str(out), "--model", str(model)]) == 2


def test_evaluate_on_the_shared_real_cases(shared_dir, tmp_path) -> None:
    """The shipped model on the two real cases of ../shared/real-mri: the report is complete (the
    figures themselves are what the model card records, not asserted here)."""
    out = tmp_path / "real"
    assert main(["evaluate", str(shared_dir / "real-mri"), "--out", str(out), "--device", "cpu"]) == 0
    cases = pd.read_csv(out / "cases.csv").set_index("case")
    assert cases.loc["tcga-du-7294", "status"] == "scored"
    assert cases.loc["tcga-du-7294", "labels"] == "brats2021"
    assert cases.loc["tcga-du-7294", "ref_SNFH_ml"] + cases.loc["tcga-du-7294", "ref_NETC_ml"] > 20
    assert cases.loc["brats-gli-00001-000", "status"] == "unlabelled"
    assert (out / "sheets" / "brats-gli-00001-000.png").stat().st_size > 0
