"""The real MONAI inference path with a tiny network on a small phantom study."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from test_segmentation_phantom import phantom_study, tiny_config

from engine.errors import ConfigError, SegmentationError
from engine.segmentation import load_model, load_segmenter
from engine.segmentation.inference import MonaiSegmenter, resample_channels, softmax_decoder
from engine.segmentation.model_config import model_config_from_dict
from engine.segmentation.network import build_network, save_weights_fp16
from engine.segmentation.preprocess import grid_multiple, normalise_channels, prepare_study, resample_study, working_grid
from engine.settings import SegmentationSettings
from engine.types import Label, Sequence, Volume

TINY = tiny_config("tiny-test", spacing_mm=4.0)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("tiny-model")
    config = model_config_from_dict(TINY, model_dir=folder)
    torch.manual_seed(0)
    save_weights_fp16(build_network(config), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(config.to_json()))
    return folder


@pytest.fixture(scope="module")
def segmenter(tiny_model_dir):
    return load_model(SegmentationSettings(model_dir=str(tiny_model_dir), device="cpu"), str(tiny_model_dir))


def test_labels_come_out_on_the_t1c_grid(segmenter) -> None:
    volumes, _ = phantom_study()
    # the T1c stored with i and j reversed (as DICOM's LPS-ordered axial images are)
    t1c = volumes[Sequence.T1C]
    flipped = Volume(t1c.array[::-1, ::-1, :].copy(), t1c.affine @ _index_flip(t1c))
    volumes[Sequence.T1C] = flipped
    result = segmenter.segment(volumes, exam="P-TEST, MRI 2026-01-01")
    assert result.labels.array.shape == flipped.array.shape
    assert result.labels.array.dtype == np.uint8
    np.testing.assert_allclose(result.labels.affine, flipped.affine)
    assert set(np.unique(result.labels.array)) <= {0, 1, 2, 3, 4}
    assert set(result.volumes_ml) == {"NETC", "SNFH", "ET", "RC"}
    assert result.model_name == "tiny-test" and result.model_version == "0.0.1"
    assert len(result.weights_sha256) == 64
    assert result.device == "cpu"
    assert result.elapsed_s > 0
    voxel_ml = flipped.voxel_ml
    for label in Label:
        count = int((result.labels.array == int(label)).sum())
        assert result.volumes_ml[label.name] == pytest.approx(count * voxel_ml)


def _index_flip(volume: Volume) -> np.ndarray:
    """i -> nx-1-i, j -> ny-1-j as a voxel-to-voxel affine (the flipped array keeps its world place)."""
    nx, ny, _ = volume.array.shape
    out = np.diag([-1.0, -1.0, 1.0, 1.0])
    out[0, 3], out[1, 3] = nx - 1, ny - 1
    return out


def test_the_storage_order_of_the_t1c_does_not_change_the_labels_in_world_space(segmenter) -> None:
    volumes, _ = phantom_study(seed=1)
    plain = segmenter.segment(volumes)
    t1c = volumes[Sequence.T1C]
    volumes[Sequence.T1C] = Volume(t1c.array[::-1, ::-1, :].copy(), t1c.affine @ _index_flip(t1c))
    flipped = segmenter.segment(volumes)
    np.testing.assert_array_equal(flipped.labels.array, plain.labels.array[::-1, ::-1, :])


def test_segmentation_is_deterministic(segmenter) -> None:
    volumes, _ = phantom_study(seed=3)
    first = segmenter.segment(volumes)
    second = segmenter.segment(volumes)
    np.testing.assert_array_equal(first.labels.array, second.labels.array)
    assert first.volumes_ml == second.volumes_ml


def test_missing_sequence_is_segmented_and_flagged(segmenter) -> None:
    volumes, _ = phantom_study()
    del volumes[Sequence.FLAIR]
    result = segmenter.segment(volumes)
    assert "missing_sequence:FLAIR" in result.flags
    assert result.labels.array.shape == volumes[Sequence.T1C].array.shape


def test_without_t1c_the_t1_grid_is_the_reference(segmenter) -> None:
    volumes, _ = phantom_study()
    del volumes[Sequence.T1C]
    result = segmenter.segment(volumes)
    assert "missing_sequence:T1c" in result.flags
    np.testing.assert_allclose(result.labels.affine, volumes[Sequence.T1].affine)


def test_nothing_usable_raises_a_clear_error(segmenter) -> None:
    volumes, _ = phantom_study()
    only_t2 = {Sequence.T2: volumes[Sequence.T2]}
    with pytest.raises(SegmentationError, match="Neither a post-contrast T1 nor a plain T1") as info:
        segmenter.segment(only_t2, exam="P-0042, MRI 2025-03-14")
    assert info.value.exam == "P-0042, MRI 2025-03-14"
    assert info.value.action


def test_an_empty_reference_image_raises(segmenter) -> None:
    volumes, _ = phantom_study()
    volumes[Sequence.T1C] = Volume(np.zeros_like(volumes[Sequence.T1C].array), volumes[Sequence.T1C].affine)
    with pytest.raises(SegmentationError, match="reference image is empty"):
        segmenter.segment(volumes)


def test_working_grid_covers_an_oblique_reference_field_of_view() -> None:
    angle = np.deg2rad(30)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([1.0, 1.0, 5.0])
    ref = Volume(np.zeros((100, 100, 10)), affine)
    grid_affine, shape = working_grid(ref, spacing_mm=2.0)
    extent = np.abs(rot[:2, :2]) @ np.array([100.0, 100.0])
    assert shape[:2] == tuple(int(round(e / 2.0)) for e in extent)
    assert shape[2] == 25
    np.testing.assert_allclose(grid_affine[:3, :3], np.diag([2.0, 2.0, 2.0]))


def test_prepare_study_resamples_in_world_space_and_normalises_the_head() -> None:
    volumes, labels = phantom_study()
    prepared = prepare_study(volumes, channels=tuple(volumes), spacing_mm=4.0, divisible_by=8)
    image = prepared.image.numpy()
    assert image.shape[0] == 4 and all(s % 8 == 0 for s in image.shape[1:])
    head = prepared.head_mask
    for channel in image:
        assert abs(channel[head].mean()) < 0.05 and channel[head].std() == pytest.approx(1.0, abs=0.05)
        assert not channel[~head].any()
    # the brightest T1c voxel (enhancing rim) lands where the phantom's ET is in world space
    t1c = image[1]
    peak = np.array(np.unravel_index(np.argmax(t1c), t1c.shape), dtype=float)
    world = prepared.working_affine @ np.append(peak, 1.0)
    src = volumes[Sequence.T1C]
    index = np.round(np.linalg.inv(src.affine) @ world).astype(int)[:3]
    window = labels[tuple(slice(max(i - 2, 0), i + 3) for i in index)]
    assert (window == int(Label.ET)).any()


def test_probability_maps_return_to_the_right_place_on_a_sagittal_reference() -> None:
    """A one-hot ball on the working grid comes back at the same world position and size."""
    working = np.diag([2.0, 2.0, 2.0, 1.0])
    working[:3, 3] = [-40.0, -40.0, -40.0]
    grid = np.stack(np.meshgrid(*[np.arange(40)] * 3, indexing="ij"), -1)
    world = grid * 2.0 - 40.0
    ball = np.linalg.norm(world - np.array([10.0, -6.0, 4.0]), axis=-1) <= 12.0
    probs = torch.zeros((5, 40, 40, 40))
    probs[3] = torch.from_numpy(ball.astype(np.float32))
    probs[0] = 1.0 - probs[3]
    # sagittal 1 mm grid: i -> posterior, j -> inferior, k -> right (RAS vectors)
    sag = np.zeros((4, 4))
    sag[:3, 0], sag[:3, 1], sag[:3, 2] = [0, -1, 0], [0, 0, -1], [1, 0, 0]
    sag[:3, 3] = [-39.5, 39.5, 39.5]
    sag[3, 3] = 1.0
    reference = Volume(np.zeros((80, 80, 80), np.float32), sag)
    labels = softmax_decoder({3: Label.ET})(resample_channels(probs, source_affine=working, reference=reference))
    et = labels == int(Label.ET)
    volume_ml = et.sum() / 1000.0
    assert volume_ml == pytest.approx(4.0 / 3.0 * np.pi * 12.0**3 / 1000.0, rel=0.08)
    centre = reference.affine @ np.append(np.argwhere(et).mean(0), 1.0)
    np.testing.assert_allclose(centre[:3], [10.0, -6.0, 4.0], atol=1.0)


def test_a_tiny_segmenter_can_be_built_directly() -> None:
    config = model_config_from_dict(TINY)
    seg = MonaiSegmenter(config=config, net=build_network(config), weights_sha256="0" * 64, device="cpu")
    volumes, _ = phantom_study(shape=(24, 24, 24))
    result = seg.segment(volumes)
    assert result.labels.array.shape == (24, 24, 24)
    assert result.config_sha256 == seg.config_sha256 == config.config_sha256()
    assert result.labels.metadata["config_sha256"] == config.config_sha256()
    assert result.labels.metadata["weights_sha256"] == "0" * 64


def test_the_config_digest_changes_with_what_changes_outputs_not_with_descriptive_text() -> None:
    digest = model_config_from_dict(TINY).config_sha256()
    assert len(digest) == 64
    same = [
        dict(reversed(list(TINY.items()))),
        {**TINY, "version": "9.9.9", "name": "renamed", "weights_file": "other.pt"},  # own store columns
        {**TINY, "training": {"steps": 100, "notes": "reworded"}},
        {**TINY, "calibration": {"command": "gliowatch calibrate", "seed": 515151}},
        {**TINY, "decision_weights": {}, "test_time_flips": [], "min_cavity_ml": 0.0},  # the defaults, spelled out
    ]
    for data in same:
        assert model_config_from_dict(data).config_sha256() == digest, data
    changed = [
        {**TINY, "decision_weights": {"ET": 2.5}},
        {**TINY, "decision_weights": {"ET": 3.0}},
        {**TINY, "test_time_flips": [[0]]},
        {**TINY, "spacing_mm": 2.0},
        {**TINY, "max_whole_volume_vox": [64, 64, 64]},
        {**TINY, "channels": ["T1c", "T1", "T2", "FLAIR"]},
        {**TINY, "network": {**TINY["network"], "num_res_units": 1}},
        {**TINY, "min_cavity_ml": 0.5},
    ]
    digests = {model_config_from_dict(data).config_sha256() for data in changed}
    assert len(digests) == len(changed) and digest not in digests
    # the probabilities' digest (calibrate's cache key) ignores the decision rule only
    base = model_config_from_dict(TINY).probabilities_sha256()
    assert all(model_config_from_dict(d).probabilities_sha256() == base for d in same)
    assert model_config_from_dict({**TINY, "decision_weights": {"ET": 3.0}}).probabilities_sha256() == base
    assert model_config_from_dict({**TINY, "min_cavity_ml": 0.5}).probabilities_sha256() == base
    rule = ("decision_weights", "min_cavity_ml")
    others = {model_config_from_dict(d).probabilities_sha256() for d in changed if not any(k in d for k in rule)}
    assert len(others) == len(changed) - 3 and base not in others


@pytest.mark.gpu
def test_cuda_inference_matches_shape_and_is_deterministic(tiny_model_dir) -> None:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    seg = load_segmenter(SegmentationSettings(model_dir=str(tiny_model_dir), device="cuda"))
    volumes, _ = phantom_study()
    first, second = seg.segment(volumes), seg.segment(volumes)
    assert first.device.startswith("cuda")
    np.testing.assert_array_equal(first.labels.array, second.labels.array)


def test_the_head_crop_sits_on_the_network_stride_lattice_of_the_working_grid() -> None:
    """Crop start = a multiple of the stride on a grid whose sides are multiples of twice it, so
    the network sees the same voxel phase as a plain sliding window over the whole grid."""
    volumes, _ = phantom_study()
    prepared = prepare_study(volumes, channels=tuple(volumes), spacing_mm=4.0, divisible_by=8)
    grid_affine, shape = working_grid(volumes[Sequence.T1C], spacing_mm=4.0, multiple_of=grid_multiple(8))
    assert all(s % 16 == 0 for s in shape)
    start = (np.linalg.inv(grid_affine) @ prepared.working_affine)[:3, 3]
    np.testing.assert_allclose(start, np.round(start), atol=1e-6)
    assert all(int(round(v)) % 8 == 0 for v in start)
    assert all(s % 8 == 0 for s in prepared.image.shape[1:])


def test_resampling_onto_the_crop_equals_cropping_the_whole_grid_inside_the_head() -> None:
    volumes, _ = phantom_study()
    channels = tuple(volumes)
    prepared = prepare_study(volumes, channels=channels, spacing_mm=4.0, divisible_by=8)
    stack, grid_affine, _ = resample_study(volumes, channels=channels, spacing_mm=4.0, multiple_of=grid_multiple(8))
    start = np.round((np.linalg.inv(grid_affine) @ prepared.working_affine)[:3, 3]).astype(int)
    size = prepared.image.shape[1:]
    whole = torch.zeros((len(channels), *size))
    region = tuple(slice(a, min(a + n, m)) for a, n, m in zip(start, size, stack.shape[1:], strict=True))
    whole[(slice(None), *(slice(0, r.stop - r.start) for r in region))] = stack[(slice(None), *region)]
    expected = normalise_channels(whole, torch.from_numpy(prepared.head_mask))
    torch.testing.assert_close(prepared.image, expected, atol=1e-4, rtol=1e-4)


def test_test_time_flips_average_the_mirrored_passes_flipped_back() -> None:
    config = model_config_from_dict({**TINY, "test_time_flips": [[0], [1, 2]]})
    torch.manual_seed(3)
    net = build_network(config)
    plain = MonaiSegmenter(config=model_config_from_dict(TINY), net=net, weights_sha256="0" * 64, device="cpu")
    mirrored = MonaiSegmenter(config=config, net=net, weights_sha256="0" * 64, device="cpu")
    volumes, _ = phantom_study(shape=(24, 24, 24))
    prepared = plain.prepare(volumes)
    image = prepared.image
    with torch.inference_mode():
        passes = [net(image[None])[0].softmax(0),
                  net(image.flip(1)[None])[0].softmax(0).flip(1),
                  net(image.flip(2, 3)[None])[0].softmax(0).flip(2, 3)]
    expected = torch.stack(passes).mean(0)
    got = mirrored.predict_probabilities(prepared)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the mirrored passes change the result (the random network is not symmetric)
    assert not torch.allclose(got, plain.predict_probabilities(prepared), atol=1e-4)
    torch.testing.assert_close(got.sum(0), torch.ones_like(got[0]), rtol=1e-5, atol=1e-5)


def test_test_time_flips_round_trip_through_the_config_and_reject_bad_axes() -> None:
    config = model_config_from_dict({**TINY, "test_time_flips": [[0]]})
    assert config.test_time_flips == ((0,),)
    assert model_config_from_dict(config.to_json()).test_time_flips == ((0,),)
    assert "test_time_flips" not in model_config_from_dict(TINY).to_json()
    for bad in ([[3]], [[]], [[0, 0]]):
        with pytest.raises(ConfigError) as info:
            model_config_from_dict({**TINY, "test_time_flips": bad})
        assert "test_time_flips" in (info.value.detail or "")


def test_flop_counter_counts_the_convolutions_of_a_pass_without_running_it() -> None:
    from engine.modelling.flops import FlopCounter

    conv = torch.nn.Conv3d(4, 8, kernel_size=3, padding=1, bias=False)
    counter = FlopCounter(conv)
    # 2 FLOPs per multiply-add: output voxels x out channels x in channels x 27
    assert counter.count((1, 4, 8, 8, 8)) == 2 * 8 * 8 * 8 * 8 * 4 * 27
    assert counter.count((2, 4, 8, 8, 8)) == 2 * counter.count((1, 4, 8, 8, 8))
    assert next(conv.parameters()).device.type == "cpu"  # the network itself is untouched
    unet = FlopCounter(build_network(model_config_from_dict(TINY)))
    assert unet.count((1, 4, 64, 64, 64)) == 8 * unet.count((1, 4, 32, 32, 32))  # all convolutions scale with volume


def test_the_cpu_path_runs_channels_last_and_matches_the_default_layout() -> None:
    config = model_config_from_dict(TINY)
    torch.manual_seed(5)
    net = build_network(config).eval()
    volumes, _ = phantom_study(shape=(24, 24, 24))
    seg = MonaiSegmenter(config=config, net=copy.deepcopy(net), weights_sha256="0" * 64, device="cpu")
    weight = next(p for p in seg.net.parameters() if p.dim() == 5)
    assert weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()
    prepared = seg.prepare(volumes)
    with torch.inference_mode():
        plain = net(prepared.image[None])[0].softmax(0)
    torch.testing.assert_close(seg.predict_probabilities(prepared), plain, rtol=1e-4, atol=1e-5)


def test_batch_norm_folds_into_the_convolutions_on_the_cpu_with_the_same_output() -> None:
    from engine.segmentation.inference import fold_for_inference

    config = model_config_from_dict({**TINY, "network": {"in_channels": 4, "channels": [4, 8], "strides": [2],
                                                         "num_res_units": 1, "norm": "batch"}})
    torch.manual_seed(6)
    net = build_network(config)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    for norm in norms:  # trained-looking statistics, so that folding changes the weights
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
        torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
        torch.nn.init.uniform_(norm.bias, -0.2, 0.2)
    net.eval()
    volumes, _ = phantom_study(shape=(24, 24, 24))
    seg = MonaiSegmenter(config=config, net=copy.deepcopy(net), weights_sha256="0" * 64, device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm3d | torch.nn.PReLU) for m in seg.net.modules())
    assert fold_for_inference(seg.net) == 0  # nothing left to fold
    prepared = seg.prepare(volumes)
    with torch.inference_mode():
        plain = net(prepared.image[None])[0].softmax(0)
    torch.testing.assert_close(seg.predict_probabilities(prepared), plain, rtol=1e-4, atol=1e-5)
    # a network in training mode is left alone (batch statistics, learnable slopes)
    training = build_network(config).train()
    assert fold_for_inference(training) == 0
    assert any(isinstance(m, torch.nn.PReLU) for m in training.modules())


def test_residual_units_add_in_place_at_inference_with_the_same_output_bit_for_bit() -> None:
    from monai.networks.blocks.convolutions import ResidualUnit

    from engine.segmentation.inference import residual_adds_in_place

    config = model_config_from_dict({**TINY, "network": {"in_channels": 4, "channels": [4, 8, 16], "strides": [2, 2],
                                                         "num_res_units": 2, "norm": "batch"}})
    torch.manual_seed(7)
    net = build_network(config).eval()
    units = sum(type(m) is ResidualUnit for m in net.modules())
    assert units > 0
    patched = copy.deepcopy(net)
    assert residual_adds_in_place(patched) == units
    assert residual_adds_in_place(patched) == 0  # already done
    image = torch.randn(1, 4, 24, 24, 24)
    with torch.inference_mode():
        assert torch.equal(patched(image), net(image))
    # with autograd on, the sum stays out of place and gradients flow as before
    leaf = image.clone().requires_grad_(True)
    out = patched(leaf)
    out.sum().backward()
    expected_leaf = image.clone().requires_grad_(True)
    net(expected_leaf).sum().backward()
    assert torch.equal(out.detach(), net(image).detach())
    assert torch.equal(leaf.grad, expected_leaf.grad)
    # a network in training mode is left alone; the CPU segmenter gets the in-place units
    assert residual_adds_in_place(build_network(config).train()) == 0
    seg = MonaiSegmenter(config=config, net=copy.deepcopy(net), weights_sha256="0" * 64, device="cpu")
    assert not any(type(m) is ResidualUnit for m in seg.net.modules())
    assert sum(isinstance(m, ResidualUnit) for m in seg.net.modules()) == units


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_foreground_box_is_the_box_of_the_foreground_dilated_by_one_voxel(seed) -> None:
    from scipy import ndimage

    from engine.segmentation.inference import foreground_box

    rng = np.random.default_rng(seed)
    foreground = np.zeros((12, 14, 10), bool)
    foreground[tuple(rng.integers(0, n, size=4) for n in foreground.shape)] = True
    foreground[0, rng.integers(0, 14), rng.integers(0, 10)] = seed == 1  # one touching the grid's edge
    reference = Volume(np.zeros((30, 30, 30), np.float32), np.diag([0.5, 0.5, 0.7, 1.0]))
    source = np.diag([1.0, 1.0, 1.0, 1.0])
    source[:3, 3] = [2.0, -1.0, 3.0]
    idx = np.argwhere(ndimage.binary_dilation(foreground, iterations=1))  # the definition
    lo, hi = idx.min(0) - 1.0, idx.max(0) + 1.0
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ref_vox = (np.linalg.inv(reference.affine) @ source @ corners.T).T[:, :3]
    low = np.clip(np.floor(ref_vox.min(0)).astype(int) - 1, 0, 30)
    high = np.clip(np.ceil(ref_vox.max(0)).astype(int) + 2, 0, 30)
    expected = tuple((int(a), int(b)) for a, b in zip(low, high, strict=True))
    assert foreground_box(foreground, source_affine=source, reference=reference) == expected
    assert foreground_box(np.zeros_like(foreground), source_affine=source, reference=reference) is None


def test_tumour_just_beyond_the_head_mask_is_tolerated_and_far_beyond_it_is_flagged(segmenter) -> None:
    from scipy import ndimage

    from engine.segmentation.inference import HEAD_TOLERANCE_VOX, finish_result

    volumes, _ = phantom_study()
    prepared = segmenter.prepare(volumes)
    head = prepared.head_mask
    band = ndimage.binary_dilation(head, iterations=HEAD_TOLERANCE_VOX) & ~head
    far = ~ndimage.binary_dilation(head, iterations=HEAD_TOLERANCE_VOX + 2)
    assert band.any() and far.any()

    def flags_with_et_at(where: np.ndarray) -> tuple[str, ...]:
        probs = torch.zeros((5, *head.shape))
        probs[0] = 1.0
        inside = np.zeros_like(head)
        inside[tuple(np.argwhere(head)[len(np.argwhere(head)) // 2])] = True  # one ET voxel in the head
        for mask in (inside, where):
            probs[0][torch.from_numpy(mask)] = 0.0
            probs[3][torch.from_numpy(mask)] = 1.0
        return finish_result(probs, prepared=prepared, decode=softmax_decoder(segmenter.config.output_labels),
                             limits=segmenter.limits, identity=("m", "v", "0" * 64, "0" * 64, "cpu"), start=0.0).flags

    assert "tumour_outside_brain" not in flags_with_et_at(band)
    assert "tumour_outside_brain" in flags_with_et_at(far)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_a_config_refuses_a_cavity_limit_that_is_not_a_volume(bad: float) -> None:
    with pytest.raises(ConfigError, match="is invalid") as caught:
        model_config_from_dict({**TINY, "min_cavity_ml": bad})
    assert "min_cavity_ml" in str(caught.value.detail)
    config = model_config_from_dict({**TINY, "min_cavity_ml": 0.5})
    assert config.min_cavity_ml == 0.5 and model_config_from_dict(config.to_json()).min_cavity_ml == 0.5
    assert "min_cavity_ml" not in model_config_from_dict(TINY).to_json()


def test_finish_result_removes_cavity_specks_on_the_reference_grid_and_says_so(segmenter) -> None:
    from engine.segmentation.inference import finish_result

    volumes, _ = phantom_study()
    prepared = segmenter.prepare(volumes)
    centre = np.argwhere(prepared.head_mask).mean(0).round().astype(int)
    probs = torch.zeros((5, *prepared.head_mask.shape))
    probs[0] = 1.0
    block = tuple(slice(int(c) - 3, int(c) + 1) for c in centre)  # 4^3 working voxels of cavity
    speck = tuple(slice(int(c) + 3, int(c) + 5) for c in centre)  # 2^3, apart from the block
    for where in (block, speck):
        probs[0][where] = 0.0
        probs[4][where] = 1.0

    def finish(min_ml: float):  # noqa: ANN202
        return finish_result(probs, prepared=prepared, decode=softmax_decoder(segmenter.config.output_labels),
                             limits=segmenter.limits, identity=("m", "v", "0" * 64, "0" * 64, "cpu"), start=0.0,
                             min_cavity_ml=min_ml)

    whole = finish(0.0)
    assert "min_cavity_ml" not in whole.labels.metadata
    from scipy import ndimage

    components, n = ndimage.label(whole.labels.array == 4, structure=np.ones((3, 3, 3), bool))
    sizes = sorted(np.bincount(components.ravel())[1:] * prepared.reference.voxel_ml)
    assert n == 2 and sizes[0] < sizes[1]
    limit = (sizes[0] + sizes[1]) / 2
    kept = finish(limit)
    assert kept.volumes_ml["RC"] == pytest.approx(sizes[1])
    assert kept.labels.metadata["min_cavity_ml"] == limit
    assert kept.labels.metadata["cavity_removed_ml"] == pytest.approx(sizes[0], abs=1e-3)
