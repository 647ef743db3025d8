"""Bring-your-own MONAI bundle (brats_mri_segmentation layout), generated in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_segmentation_phantom import phantom_study

from engine.errors import ConfigError
from engine.segmentation import load_model
from engine.segmentation.bundle import LABEL_CONVENTIONS, BundleSegmenter, map_labels, read_bundle
from engine.settings import SegmentationSettings
from engine.types import Label, Sequence
from tests.support import dice

ZOO_CHANNELS = {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}


def _write_bundle(root: Path, *, network_def: dict, state: dict, outputs: dict | None, inputs: dict | None = ZOO_CHANNELS) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    inference = {"bundle_root": ".", "network_def": network_def,
                 "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [240, 240, 160], "sw_batch_size": 1, "overlap": 0.5}}
    (root / "configs" / "inference.json").write_text(json.dumps(inference))
    if inputs is not None or outputs is not None:
        fmt = {"inputs": {"image": {"num_channels": 4, "channel_def": inputs or {}}},
               "outputs": {"pred": {"channel_def": outputs or {}}}}
        meta = {"version": "9.9.9", "network_data_format": fmt}
        (root / "configs" / "metadata.json").write_text(json.dumps(meta))
    torch.save(state, root / "models" / "model.pt")
    return root


def _threshold_conv(rows: list[tuple[int, float, float]], n_out: int) -> tuple[dict, dict]:
    """A 1x1x1 Conv3d: output channel c = gain * input[channel] + bias for each (channel, gain, bias)."""
    conv = torch.nn.Conv3d(4, n_out, kernel_size=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for out, (channel, gain, bias) in enumerate(rows):
            if gain:
                conv.weight[out, channel] = gain
            conv.bias[out] = bias
    network_def = {"_target_": "torch.nn.Conv3d", "in_channels": 4, "out_channels": n_out, "kernel_size": 1}
    return network_def, conv.state_dict()


def _phantom_on_its_grid():
    volumes, truth = phantom_study()
    return volumes, truth


@pytest.mark.parametrize(
    ("convention", "expected_et"),
    [("brats2021", Label.ET), ("brats2024", Label.RC)],
    ids=["BraTS-2021 label 4 is enhancing tumour", "BraTS-2024 label 4 is resection cavity"],
)
def test_softmax_bundle_labels_follow_the_declared_convention(tmp_path: Path, convention: str, expected_et: Label) -> None:
    # channel 4 fires where the T1c (input 0 in the zoo order) is bright: the enhancing rim
    rows = [(0, 0.0, 0.0), (0, 0.0, -50.0), (0, 0.0, -50.0), (0, 0.0, -50.0), (0, 10.0, -30.0)]
    network_def, state = _threshold_conv(rows, 5)
    root = _write_bundle(tmp_path / "bundle", network_def=network_def, state=state, outputs=None)
    settings = SegmentationSettings(bundle_dir=str(root), bundle_labels=convention, device="cpu")
    seg = load_model(settings, settings.model_dir)
    volumes, truth = _phantom_on_its_grid()
    result = seg.segment(volumes)
    found = result.labels.array == int(expected_et)
    assert dice(found, truth == int(Label.ET)) > 0.8
    assert set(np.unique(result.labels.array)) == {0, int(expected_et)}
    assert result.model_name == "bundle:bundle"
    assert result.config_sha256 == seg.config_sha256 and len(seg.config_sha256) == 64


def test_the_bundle_config_digest_covers_what_gliowatch_uses(tmp_path: Path) -> None:
    from engine.segmentation.bundle import bundle_config_sha256, label_convention

    def digest(root: Path, convention: str = "brats2024") -> str:
        return bundle_config_sha256(read_bundle(root), label_convention(convention))

    network_def, state = _threshold_conv([(0, 0.0, 0.0)] * 5, 5)
    root = _write_bundle(tmp_path / "labels", network_def=network_def, state=state, outputs=None)
    base = digest(root)
    assert digest(root, "brats2021") != base  # softmax outputs: the label mapping decides
    inference = json.loads((root / "configs" / "inference.json").read_text())
    for change, same in (({"overlap": 0.25, "sw_batch_size": 4}, True), ({"roi_size": [128, 128, 128]}, False)):
        edited = {**inference, "inferer": {**inference["inferer"], **change}}
        (root / "configs" / "inference.json").write_text(json.dumps(edited))
        assert (digest(root) == base) is same, change  # inferer keys GlioWatch does not read are left out
    no_bias = {**inference, "network_def": {**network_def, "bias": False}}
    (root / "configs" / "inference.json").write_text(json.dumps(no_bias))
    assert digest(root) != base
    regions_def, regions_state = _threshold_conv([(0, 0.0, 0.0)] * 3, 3)
    regions = _write_bundle(tmp_path / "regions", network_def=regions_def, state=regions_state, outputs=None)
    assert digest(regions, "brats2021") == digest(regions, "brats2024")  # region outputs ignore the convention


def test_zoo_style_region_bundle_is_decoded_into_labels(tmp_path: Path) -> None:
    # TC / WT / ET sigmoid maps as brats_mri_segmentation outputs them; inputs in zoo order
    rows = [(0, 10.0, -30.0), (3, 10.0, -12.0), (0, 10.0, -30.0)]  # TC=ET=bright T1c, WT=bright FLAIR
    network_def, state = _threshold_conv(rows, 3)
    outputs = {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}
    root = _write_bundle(tmp_path / "zoo", network_def=network_def, state={"model": state}, outputs=outputs)
    spec = read_bundle(root)
    assert spec.output == "regions"
    assert spec.channels == (Sequence.T1C, Sequence.T1, Sequence.T2, Sequence.FLAIR)
    assert spec.roi_vox == (240, 240, 160)
    seg = BundleSegmenter(bundle_dir=root, device="cpu")
    volumes, truth = _phantom_on_its_grid()
    result = seg.segment(volumes)
    labels = result.labels.array
    assert dice(labels == int(Label.ET), truth == int(Label.ET)) > 0.8
    whole = np.isin(labels, [1, 2, 3])
    assert dice(whole, truth > 0) > 0.7
    assert result.model_version == "9.9.9"


def test_bundle_without_metadata_uses_the_zoo_defaults(tmp_path: Path) -> None:
    network_def, state = _threshold_conv([(0, 0.0, 0.0)] * 3, 3)
    spec = read_bundle(_write_bundle(tmp_path / "b", network_def=network_def, state=state, outputs=None, inputs=None))
    assert spec.output == "regions"
    assert spec.channels[0] is Sequence.T1C


def test_weights_that_do_not_fit_are_a_config_error(tmp_path: Path) -> None:
    network_def, _ = _threshold_conv([(0, 0.0, 0.0)] * 5, 5)
    _, other = _threshold_conv([(0, 0.0, 0.0)] * 3, 3)
    root = _write_bundle(tmp_path / "bad", network_def=network_def, state=other, outputs=None)
    with pytest.raises(ConfigError, match="does not fit network_def"):
        BundleSegmenter(bundle_dir=root, device="cpu")


def test_missing_inference_config_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="inference.json does not exist"):
        read_bundle(tmp_path)


def test_unknown_convention_is_refused(tmp_path: Path) -> None:
    network_def, state = _threshold_conv([(0, 0.0, 0.0)] * 5, 5)
    root = _write_bundle(tmp_path / "b", network_def=network_def, state=state, outputs=None)
    with pytest.raises(ConfigError, match="Unknown label convention"):
        BundleSegmenter(bundle_dir=root, labels="brats2019", device="cpu")


@pytest.mark.parametrize(
    ("convention", "raw", "expected"),
    [
        ("brats2021", [0, 1, 2, 3, 4], [0, 1, 2, 0, 3]),
        ("brats2023", [0, 1, 2, 3, 4], [0, 1, 2, 3, 0]),
        ("brats2024", [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]),
    ],
    ids=["2021: NCR 1, ED 2, ET 4", "2023: NETC 1, SNFH 2, ET 3", "2024: NETC 1, SNFH 2, ET 3, RC 4"],
)
def test_label_mapping_per_convention(convention: str, raw: list[int], expected: list[int]) -> None:
    assert map_labels(np.array(raw, dtype=np.uint8), convention=convention).tolist() == expected
    assert set(LABEL_CONVENTIONS[convention].values()) <= set(Label)
