"""A registration composed from stored ones: no optimiser runs, the same QC judges it, and the
pipeline step resamples the labels like a direct one."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.dicom.nifti import read_nifti, write_nifti
from engine.pipeline import RegistrationJob, StudyFiles, compute_registration
from engine.registration import QcThresholds, Stage
from engine.registration.compose import COMPOSED_METRIC, compose, composed_result
from engine.registration.geometry import rigid_matrix, volume_center_mm
from engine.registration.phantom import Template, acquire, load_template, paint_sphere
from engine.registration.torch_registrar import TorchRegistrar
from engine.registration.resample import resample_to
from engine.state_paths import StatePaths, StoredFile
from engine.types import Label, Volume


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(spacing_mm=4.0)


def _moved(template: Template, truth: np.ndarray, seed: int) -> Volume:
    moving, _ = acquire(image=template.image, truth=truth, spacing_mm=(4.0, 4.0, 6.0),
                        extent_mm=(180.0, 210.0, 170.0), noise_sd=0.02, rng=np.random.default_rng(seed),
                        dicom_axial=True)
    return moving


def _truth(template: Template, rotation: tuple[float, float, float], shift: tuple[float, float, float]) -> np.ndarray:
    center = volume_center_mm(template.image.affine, template.image.array.shape)
    return rigid_matrix(rotation_deg=rotation, translation_mm=shift, center_mm=center)


def test_the_true_chain_passes_and_a_wrong_one_fails_the_same_qc(template: Template) -> None:
    a_to_fixed = _truth(template, (-4.0, 3.0, 6.0), (-5.0, 6.0, 3.0))
    b_to_fixed = _truth(template, (2.0, -5.0, 1.0), (4.0, -3.0, 2.0))
    a, b = _moved(template, a_to_fixed, 1), _moved(template, b_to_fixed, 2)
    a_to_b = compose(a_to_fixed, np.linalg.inv(b_to_fixed))
    good = composed_result(fixed=b, moving=a, matrix=a_to_b, method="composed (test)", margin_mm=5.0)
    assert good.passed, good.qc_reason
    assert good.method == "composed (test)" and good.metric_name == COMPOSED_METRIC
    assert math.isnan(good.final_metric) and good.stage is Stage.RIGID
    assert np.allclose(good.matrix, a_to_b)
    # a chain with one half wrong (the inverse left out) is judged on the pair and fails
    wrong = composed_result(fixed=b, moving=a, matrix=compose(a_to_fixed, b_to_fixed), method="composed (test)",
                            margin_mm=5.0, thresholds=QcThresholds(max_rotation_deg=10.0))
    assert not wrong.passed
    assert wrong.similarity < good.similarity


def test_the_pipeline_step_checks_a_composed_baseline_registration_and_resamples_its_labels(
        template: Template, tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    truth = _truth(template, (3.0, -2.0, 4.0), (6.0, -4.0, 2.0))
    center = volume_center_mm(template.image.affine, template.image.array.shape)
    fixed, fixed_labels = paint_sphere(image=template.image, labels=None, center_mm=center + [-25.0, 5.0, 10.0],
                                       radius_mm=12.0, intensity=1.0, label=Label.ET)
    moving, moving_labels = acquire(image=fixed, labels=fixed_labels, truth=truth, spacing_mm=(4.0, 4.0, 6.0),
                                    extent_mm=(180.0, 210.0, 170.0), noise_sd=0.02,
                                    rng=np.random.default_rng(3), dicom_axial=True)
    for uid, vol, labels in (("1.1", fixed, fixed_labels), ("1.2", moving, moving_labels)):
        for folder, name, data in ((paths.volumes_dir, "T1c", vol), (paths.labels_dir, "labels", labels)):
            target = folder / "P-TEST" / uid / f"{name}.nii.gz"
            target.parent.mkdir(parents=True, exist_ok=True)
            write_nifti(data, target, force=True)
    files = {uid: StudyFiles(uid, "P-TEST", f"patient P-TEST, MRI {uid}", {"T1c": f"P-TEST/{uid}/T1c.nii.gz"},
                             labels=f"P-TEST/{uid}/labels.nii.gz") for uid in ("1.1", "1.2")}
    job = RegistrationJob(files["1.2"], files["1.1"], "baseline", composed=tuple(map(tuple, truth)),
                          composed_method="composed (#1 then #2; test)")

    class NeverRegisters(TorchRegistrar):
        def register(self, **kwargs):  # noqa: ANN003, ANN201
            raise AssertionError("a composed registration must not be optimised")

    out = compute_registration(job, registrar=NeverRegisters(device="cpu"), paths=paths)
    assert out.error == "" and out.result is not None and out.result.passed, out
    assert out.result.method == "composed (#1 then #2; test)"
    assert np.allclose(out.result.matrix, truth)
    # only the labels are resampled into the baseline's grid (the images are moved when shown)
    assert set(out.resampled) == {"labels"}
    registered = read_nifti(paths.resolve(StoredFile.REGISTERED, out.resampled["labels"]))
    assert registered.array.shape == fixed.array.shape and registered.array.dtype == moving_labels.array.dtype
    unmoved = resample_to(reference=fixed, moving=moving_labels, matrix=np.eye(4), interpolation="nearest")
    truth_et = fixed_labels.array == int(Label.ET)

    def dice(a: np.ndarray) -> float:
        et = a == int(Label.ET)
        return 2.0 * float((et & truth_et).sum()) / float(et.sum() + truth_et.sum())

    assert dice(registered.array) > 0.8 > dice(unmoved.array) + 0.2, (dice(registered.array), dice(unmoved.array))
