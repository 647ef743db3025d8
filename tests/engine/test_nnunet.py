"""The nnU-Net v2 runner on the tiny model folder nnunetv2 trained here (tests/fixtures/nnunet-tiny).

The folder was made by nnunetv2's own planning and training (make_fixture.py there); these tests
load it through nnunetv2's predictor and check the whole path: channels, labels, folds, the
native T1c grid, the volumes, the identity, the refusals and the parity with ``nnUNetv2_predict``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nnunetv2", reason="nnunetv2 is not installed (requirements.lock)")

from engine.errors import ConfigError, SegmentationError  # noqa: E402
from engine.segmentation.nnunet import NnUNetSegmenter  # noqa: E402
from engine.segmentation.nnunet_folder import LABEL_PRESETS, read_nnunet_folder  # noqa: E402
from engine.segmentation.sanity import label_volumes_ml  # noqa: E402
from engine.types import Label, Sequence, Volume  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nnunet-tiny" / "model"


def synthetic_volumes(seed: int = 11, *, spacing_mm: float = 4.0) -> dict[Sequence, Volume]:
    from engine.modelling.synth.training import sample_training_case
    from engine.types import STUDY_SEQUENCES

    case = sample_training_case(seed, spacing_mm=spacing_mm, normalize=False, thick_slice_probability=0.0)
    return {s: Volume(case.images[i], case.affine.copy()) for i, s in enumerate(STUDY_SEQUENCES)}


@pytest.fixture(scope="module")
def tiny() -> NnUNetSegmenter:
    """Both folds, ensembled (fold 1 of this barely trained model says background almost everywhere)."""
    return NnUNetSegmenter(model_dir=FIXTURE, labels="brats2024-post", folds=("0", "1"), mirroring=False,
                           device="cpu", name="tiny")


@pytest.fixture(scope="module")
def fold0() -> NnUNetSegmenter:
    """Fold 0 alone: it outputs cavity (4) and some FLAIR hyperintensity (2) on the synthetic studies."""
    return NnUNetSegmenter(model_dir=FIXTURE, labels="brats2024-post", folds=("0",), mirroring=False,
                           device="cpu", name="tiny-f0")


def test_the_folder_gives_channels_labels_folds_and_hashes() -> None:
    folder = read_nnunet_folder(FIXTURE, labels="brats2024-post")
    assert folder.channels == (Sequence.T1, Sequence.T1C, Sequence.T2, Sequence.FLAIR)  # t1n, t1c, t2w, t2f
    assert folder.labels == {1: Label.NETC, 2: Label.SNFH, 3: Label.ET, 4: Label.RC}
    assert folder.folds == ("0", "1") and folder.axes == "zyx"
    one_fold = read_nnunet_folder(FIXTURE, labels="brats2024-post", folds=("0",))
    assert one_fold.weights_sha256 != folder.weights_sha256 and one_fold.config_sha256 != folder.config_sha256
    assert read_nnunet_folder(FIXTURE, labels="brats2024-post").weights_sha256 == folder.weights_sha256
    mirrored = read_nnunet_folder(FIXTURE, labels="brats2024-post", decoding={"mirroring": True})
    assert mirrored.config_sha256 != folder.config_sha256 and mirrored.weights_sha256 == folder.weights_sha256


@pytest.mark.parametrize("preset", ["brats2021", "brats2023"])
def test_a_label_mapping_that_does_not_cover_the_model_is_refused(preset: str) -> None:
    uncovered = "3 \\(ET\\)" if preset == "brats2021" else "4 \\(RC\\)"
    with pytest.raises(ConfigError, match=f"model tiny: output label\\(s\\) {uncovered} are not covered by the label mapping"):
        read_nnunet_folder(FIXTURE, labels=preset, name="tiny")
    assert set(LABEL_PRESETS[preset]) != {1, 2, 3, 4}


def test_an_explicit_label_map_is_read_and_checked() -> None:
    folder = read_nnunet_folder(FIXTURE, labels={"1": "NETC", "2": "SNFH", "3": "ET", "4": "RC"})
    assert folder.labels[4] is Label.RC
    with pytest.raises(ConfigError, match="label_map entry '4' = 'CAVITY'"):
        read_nnunet_folder(FIXTURE, labels={"1": "NETC", "2": "SNFH", "3": "ET", "4": "CAVITY"})


def test_a_mapping_that_contradicts_the_label_names_is_refused() -> None:
    """Covered is not enough: dataset.json names value 4 'RC'; a table making it ET is refused."""
    with pytest.raises(ConfigError, match="label 4 is named 'RC' in dataset.json, but the label mapping .* makes it ET"):
        read_nnunet_folder(FIXTURE, labels={"1": "NETC", "2": "SNFH", "3": "ET", "4": "ET"})


def test_a_region_based_model_outputs_its_regions_class_order() -> None:
    from engine.segmentation.nnunet_folder import output_values

    brats21 = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": 3},
               "regions_class_order": [1, 2, 3]}  # nnU-Net's own BraTS 2021 conversion: 1 ED, 2 NCR, 3 ET
    assert output_values(brats21) == {1: "whole tumor", 2: "tumor core", 3: "enhancing tumor"}


def test_a_missing_fold_is_refused_with_the_folds_present() -> None:
    with pytest.raises(ConfigError, match=r"model tiny: fold\(s\) 3 have no fold_N/checkpoint_final.pth \(folds present: 0, 1\)"):
        read_nnunet_folder(FIXTURE, labels="brats2024-post", folds=("0", "3"), name="tiny")


def test_an_unknown_channel_name_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(FIXTURE, model)
    dataset = json.loads((model / "dataset.json").read_text())
    dataset["channel_names"]["3"] = "DWI"
    (model / "dataset.json").write_text(json.dumps(dataset))
    with pytest.raises(ConfigError, match="input channel 'DWI' is not a sequence GlioWatch knows"):
        read_nnunet_folder(model, labels="brats2024-post")


def test_the_runner_writes_mapped_labels_on_the_native_t1c_grid(fold0: NnUNetSegmenter) -> None:
    volumes = synthetic_volumes()
    # FLAIR on its own (coarser, shifted) grid: resampled onto the T1c grid before nnU-Net sees it
    flair = volumes[Sequence.FLAIR]
    affine = flair.affine.copy()
    affine[:3, 3] += 2.0
    volumes[Sequence.FLAIR] = Volume(flair.array, affine)
    result = fold0.segment(volumes, exam="synthetic")
    t1c = volumes[Sequence.T1C]
    assert result.labels.array.shape == t1c.array.shape
    np.testing.assert_array_equal(result.labels.affine, t1c.affine)
    assert set(np.unique(result.labels.array)) <= {0, 1, 2, 3, 4}
    assert result.volumes_ml == label_volumes_ml(result.labels.array, voxel_ml=t1c.voxel_ml)
    assert result.volumes_ml["RC"] > 0  # the model's 4 became GlioWatch's RC
    assert result.model_name == "nnunet:tiny-f0" and result.device == "cpu"
    assert result.model_version == "nnUNetPlans/model/folds-0"
    assert result.weights_sha256 == fold0.folder.weights_sha256 and len(result.config_sha256) == 64
    assert result.labels.metadata["nnunet_folds"] == ["0"]
    assert result.labels.metadata["reference_sequence"] == "T1c"


def test_the_folds_are_ensembled(tiny: NnUNetSegmenter, fold0: NnUNetSegmenter) -> None:
    volumes = synthetic_volumes()
    t1c = volumes[Sequence.T1C]
    from engine.segmentation.nnunet import model_input

    stack = model_input(volumes, channels=tiny.folder.channels, reference=t1c)
    labels, both = tiny.predict(stack, spacing_mm=t1c.spacing_mm, probabilities=True)
    _, one = fold0.predict(stack, spacing_mm=t1c.spacing_mm, probabilities=True)
    assert both is not None and one is not None and both.shape == (5, *t1c.array.shape)
    assert np.abs(both - one).max() > 0.05  # fold 1 changed the result
    np.testing.assert_allclose(both.sum(axis=0), 1.0, atol=1e-4)
    assert labels.shape == t1c.array.shape


def test_a_study_lacking_a_sequence_of_the_model_is_refused(tiny: NnUNetSegmenter) -> None:
    volumes = synthetic_volumes()
    del volumes[Sequence.FLAIR]
    with pytest.raises(SegmentationError, match="Model nnunet:tiny needs FLAIR, which the study lacks") as info:
        tiny.segment(volumes, exam="patient P-0001, MRI 2025-01-01")
    assert info.value.exam == "patient P-0001, MRI 2025-01-01"


@pytest.mark.slow
def test_the_runner_matches_nnunetv2_predict_voxel_for_voxel() -> None:
    """The same weights, folds and mirroring through ``nnUNetv2_predict`` (the command).

    Marked slow: the command's own start-up (importing nnunetv2 in a new process) and eight
    mirrored passes per fold took minutes on the shared 2-core machine (this test: 5.3 min, load
    average 10-20); run it with ``-m slow`` or ``python -m benchmarks.bench_nnunet_parity``."""
    from benchmarks.bench_nnunet_parity import parity

    report = parity(model_dir=FIXTURE, folds=("0", "1"), mirroring=True, seeds=(2024,))
    assert report["min_dice"] >= 0.999, report["cases"]
    assert report["cases"][0]["equal_voxels"] >= 0.999
    assert report["cases"][0]["max_probability_difference"] < 1e-4  # not only where both say background


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs CUDA (the runner's GPU path: predictor and sliding window on the device)")
def test_the_runner_on_cuda_gives_the_labels_of_the_cpu(tiny: NnUNetSegmenter) -> None:
    gpu = NnUNetSegmenter(model_dir=FIXTURE, labels="brats2024-post", folds=("0", "1"), mirroring=False,
                          device="cuda", name="tiny")
    volumes = synthetic_volumes()
    on_gpu, on_cpu = gpu.segment(volumes), tiny.segment(volumes)
    assert on_gpu.device.startswith("cuda")
    assert (on_gpu.labels.array == on_cpu.labels.array).mean() >= 0.999


def test_the_doctests_of_the_folder_reader_pass() -> None:
    import doctest

    from engine.segmentation import nnunet_folder

    assert doctest.testmod(nnunet_folder).failed == 0
