"""gliowatch-anomaly (intensity anomalies against the scan's own brain) and the routing of
skull-stripped studies to it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.segmentation import load_segmenter
from engine.segmentation.anomaly import (
    AnomalyParameters, AnomalySegmenter, anomaly_labels, is_anomaly_model, load_anomaly_parameters,
)
from engine.segmentation.input_kind import FLAG, skull_stripped
from engine.settings import PROJECT_ROOT, SegmentationSettings
from engine.types import Label, Sequence, Volume
from tests.support import dice

SPACING = 2.0
AFFINE = np.diag([SPACING, SPACING, SPACING, 1.0])


def stripped_brain(*, rng_seed: int = 0) -> tuple[dict[Sequence, Volume], np.ndarray]:
    """A skull-stripped 'brain' (an ellipsoid of about 1.3 L on a 2 mm grid, zero outside) of
    grey and white matter, holding a glioblastoma-like lesion: a FLAIR-bright region of radius
    20 mm around an enhancing rim (T1c bright, radius 7-11 mm) closing a necrotic core. Returns
    the four sequences and the true labels (GlioWatch numbering)."""
    shape = (80, 96, 76)
    grid = np.indices(shape).astype(np.float32) * SPACING
    centre = np.array(shape, np.float32)[:, None, None, None] * SPACING / 2
    radii = np.array([65.0, 80.0, 60.0])[:, None, None, None]
    inside = (((grid - centre) / radii) ** 2).sum(0) < 1
    rng = np.random.default_rng(rng_seed)
    white = inside & ((((grid - centre) / (radii * 0.7)) ** 2).sum(0) < 1)
    lesion_centre = centre + np.array([25.0, 15.0, 5.0])[:, None, None, None]
    r = np.sqrt(((grid - lesion_centre) ** 2).sum(0))
    truth = np.zeros(shape, np.uint8)
    truth[inside & (r < 20)] = Label.SNFH
    truth[inside & (r < 11)] = Label.ET
    truth[inside & (r < 7)] = Label.NETC
    # (grey, white, oedema, enhancing rim, necrosis) per sequence
    signal = {Sequence.T1: (50, 70, 45, 55, 35), Sequence.T1C: (55, 75, 50, 120, 35),
              Sequence.T2: (80, 60, 120, 100, 140), Sequence.FLAIR: (70, 55, 120, 100, 90)}
    volumes = {}
    for seq, (grey, wm, oedema, rim, necrosis) in signal.items():
        image = np.where(white, wm, grey).astype(np.float32)
        for label, value in ((Label.SNFH, oedema), (Label.ET, rim), (Label.NETC, necrosis)):
            image[truth == label] = value
        image = (image + rng.normal(0, 3, shape)) * inside
        volumes[seq] = Volume(image.astype(np.float32), AFFINE.copy())
    return volumes, truth


def test_a_stripped_brain_is_recognised_and_a_noisy_head_is_not() -> None:
    volumes, _ = stripped_brain()
    assert skull_stripped(volumes[Sequence.T1C])
    noisy = volumes[Sequence.T1C].array + np.abs(np.random.default_rng(1).normal(0, 2, volumes[Sequence.T1C].array.shape))
    assert not skull_stripped(Volume(noisy.astype(np.float32), AFFINE.copy()))


def test_the_lesion_is_found_as_rim_core_and_surrounding_hyperintensity() -> None:
    volumes, truth = stripped_brain()
    result = AnomalySegmenter().segment(volumes)
    labels = result.labels.array
    assert result.model_name == "gliowatch-anomaly" and result.weights_sha256 == ""
    assert dice(labels > 0, truth > 0) > 0.85
    assert dice(labels == Label.ET, truth == Label.ET) > 0.6
    assert dice(np.isin(labels, [Label.ET, Label.NETC]), np.isin(truth, [Label.ET, Label.NETC])) > 0.8
    assert result.volumes_ml["RC"] == 0.0  # never a cavity: that needs the surgical history
    assert not (labels[truth == 0] > 0).mean() > 0.01


def test_without_flair_the_t2_carries_the_whole_tumour_and_without_t1c_there_is_no_enhancement() -> None:
    volumes, truth = stripped_brain()
    no_flair = {s: v for s, v in volumes.items() if s is not Sequence.FLAIR}
    result = AnomalySegmenter().segment(no_flair)
    assert dice(result.labels.array > 0, truth > 0) > 0.8
    assert "missing_sequence:FLAIR" in result.flags
    brain = volumes[Sequence.T1].array > 0
    plain = {seq: volumes[seq].array for seq in (Sequence.T1, Sequence.T2, Sequence.FLAIR)}
    labels = anomaly_labels(plain, brain, p=AnomalyParameters(), spacing_mm=SPACING)
    assert not (labels == Label.ET).any() and (labels == Label.SNFH).any()


def test_a_brain_without_lesion_gets_no_tumour() -> None:
    volumes, truth = stripped_brain()
    healthy = {}
    for seq, vol in volumes.items():
        array = vol.array.copy()
        array[truth > 0] = np.median(array[(truth == 0) & (array > 0)])
        healthy[seq] = Volume(array, vol.affine)
    result = AnomalySegmenter().segment(healthy)
    assert sum(result.volumes_ml.values()) < 0.5


def test_the_default_segmentation_routes_stripped_studies_to_the_anomaly_model() -> None:
    volumes, _ = stripped_brain()
    segmenter = load_segmenter(SegmentationSettings(device="cpu"))
    routed = segmenter.segment(volumes)
    assert routed.model_name == "gliowatch-anomaly" and routed.flags[0] == FLAG
    head = {s: Volume(v.array + 5.0 + np.random.default_rng(2).random(v.array.shape, np.float32), v.affine)
            for s, v in volumes.items()}
    whole = segmenter.segment(head)
    assert whole.model_name == "gliowatch-unet" and FLAG not in whole.flags
    off = load_segmenter(SegmentationSettings(device="cpu", stripped_model_dir=""))
    assert off.segment(volumes).model_name == "gliowatch-unet"


def test_the_shipped_anomaly_config_loads_and_a_bad_one_is_refused(tmp_path) -> None:
    shipped = PROJECT_ROOT / "models" / "gliowatch-anomaly"
    assert is_anomaly_model(shipped) and (shipped / "MODEL_CARD.md").exists()
    assert load_anomaly_parameters(shipped) == AnomalyParameters()  # the file states the defaults
    (tmp_path / "config.json").write_text(json.dumps({"method": "anomaly", "parameters": {"hyper": 2}}))
    with pytest.raises(ConfigError, match=r"unknown parameters \['hyper'\]"):
        load_anomaly_parameters(tmp_path)


def test_synthetic_whole_head_studies_are_not_routed(tmp_path) -> None:
    """The synthetic cohorts gliowatch-unet is measured on keep running it: none of their series
    looks skull-stripped."""
    from engine.dicom import read_study_dir
    from engine.modelling.synth.cohort import generate_cohort

    manifest = json.loads(generate_cohort(n_patients=1, seed=424242, out_dir=tmp_path, size="test",
                                          n_visits=3).read_text())
    for visit in manifest["patients"][0]["visits"]:
        volumes = [volume for _, volume in read_study_dir(tmp_path / visit["dir"]).volumes]
        assert volumes and not any(skull_stripped(v) for v in volumes), visit["dir"]


@pytest.mark.parametrize("module_name", [
    "engine.segmentation.anomaly", "engine.segmentation.input_kind",
    "engine.modelling.evaluation.agreement", "engine.modelling.evaluation.scoring",
    "engine.modelling.evaluation.dataset", "engine.modelling.evaluation.figures", "engine.orientation",
])
def test_doctests(module_name: str) -> None:
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module(module_name), raise_on_error=False)[:2]
    assert tried >= 1 and failures == 0, module_name
