"""The lesion-level table (clinical-spec 8.2) and lesion tracking by IoU + Hungarian matching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.criteria import load_criteria
from engine.lesions import axial_view, find_lesions, match_lesions, outside_field, select_targets
from engine.types import Volume

RANO2 = load_criteria("rano2").measurability
RANO2010 = load_criteria("rano2010").measurability


def _lesions(mask: np.ndarray, *, spacing=(1.0, 1.0, 2.0), criteria=RANO2):
    view = axial_view(Volume(mask.astype(np.uint8), np.diag([*spacing, 1.0])))
    return find_lesions(view.array.astype(bool), view=view, criteria=criteria)


def _block(shape, a, b, s) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[a[0] : a[1], b[0] : b[1], s[0] : s[1]] = True
    return mask


SHAPE = (64, 64, 12)


def _ellipse_cylinder(d1_mm: float, d2_mm: float, slices: tuple[int, int]) -> np.ndarray:
    a, b = np.mgrid[0:64, 0:64]
    disc = ((a - 31.5) / (d1_mm / 2)) ** 2 + ((b - 31.5) / (d2_mm / 2)) ** 2 <= 1.0
    mask = np.zeros(SHAPE, bool)
    mask[:, :, slices[0] : slices[1]] = disc[:, :, None]
    return mask


LESION_CASES = [
    # (id, d1 mm, d2 mm, slice range, slice thickness mm, measurable?)
    ("ET lesion 20 x 14 mm on 3 slices -> measurable", 20.0, 14.0, (2, 5), 2.0, True),
    ("ET lesion 20 x 8 mm -> non-measurable (d2 < 10 mm)", 20.0, 8.0, (2, 6), 2.0, False),
    ("ET lesion 20 x 20 mm on one slice -> non-measurable (< 2 slices)", 20.0, 20.0, (2, 3), 2.0, False),
    ("ET lesion 11 x 11 mm with 6 mm slices -> non-measurable (minimum 2 x 6 = 12 mm)", 11.0, 11.0, (2, 4), 6.0,
     False),
    ("ET lesion 14 x 14 mm with 6 mm slices -> measurable", 14.0, 14.0, (2, 4), 6.0, True),
]


@pytest.mark.parametrize(("d1", "d2", "s", "thickness", "measurable"), [c[1:] for c in LESION_CASES],
                         ids=[c[0] for c in LESION_CASES])
def test_lesion_measurability_table(d1, d2, s, thickness, measurable) -> None:
    _, lesions = _lesions(_ellipse_cylinder(d1, d2, s), spacing=(1.0, 1.0, thickness))
    (lesion,) = lesions
    assert lesion.measurable is measurable, lesion.note


def test_components_are_26_connected_and_small_ones_dropped() -> None:
    mask = _block(SHAPE, (10, 25), (10, 25), (2, 5))
    mask[25, 25, 5] = True  # touches the block only diagonally (corner): same component with 26-connectivity
    mask[50:53, 50:53, 8:9] = True  # 9 voxels x 2 mm³ = 0.018 mL < 0.3 mL: dropped
    labels, lesions = _lesions(mask)
    assert len(lesions) == 1 and labels.max() == 1
    assert lesions[0].volume_ml == pytest.approx((15 * 15 * 3 + 1) * 0.002)


def test_targets_are_the_largest_measurable_products_up_to_the_profile_maximum() -> None:
    mask = np.zeros((120, 120, 8), bool)
    sizes = [(12, 12), (20, 20), (14, 14), (30, 15), (16, 11), (11, 8)]  # the last is non-measurable
    for n, (da, db) in enumerate(sizes):
        a0, b0 = 2 + (n % 3) * 40, 2 + (n // 3) * 45
        mask[a0 : a0 + da, b0 : b0 + db, 2:5] = True
    _, lesions = _lesions(mask)
    by_product = sorted((l for l in lesions if l.measurable), key=lambda l: -l.product_mm2)
    targets_rano2 = select_targets(lesions, n_target_max=RANO2.n_target_max)  # 3 targets
    targets_2010 = select_targets(lesions, n_target_max=RANO2010.n_target_max)  # 5 targets
    assert targets_rano2 == tuple(l.lesion_index for l in by_product[:3])
    assert targets_2010 == tuple(l.lesion_index for l in by_product[:5])
    non_target = {l.lesion_index for l in lesions} - set(targets_rano2)
    assert len(non_target) == 3


def test_same_lesion_shifted_slightly_is_matched_not_new() -> None:
    previous = _block(SHAPE, (10, 25), (10, 25), (2, 5)).astype(np.int32)
    current = _block(SHAPE, (12, 27), (11, 26), (2, 5)).astype(np.int32)
    matching = match_lesions(previous, current, iou_min=RANO2.new_lesion_iou)
    assert [(m.previous_index, m.current_index) for m in matching.matches] == [(1, 1)]
    assert matching.new == () and matching.disappeared == ()


def test_unmatched_component_is_a_new_lesion() -> None:
    previous = _block(SHAPE, (10, 25), (10, 25), (2, 5)).astype(np.int32)
    current = previous.copy()
    current[40:55, 40:55, 2:5] = 2
    matching = match_lesions(previous, current, iou_min=RANO2.new_lesion_iou)
    assert matching.new == (2,)
    _, lesions = _lesions(current == 2)
    assert lesions[0].measurable  # new lesions are tested for measurability


def test_hungarian_matching_prefers_the_best_overall_assignment() -> None:
    previous = np.zeros(SHAPE, np.int32)
    previous[10:30, 10:20, 2:5] = 1
    previous[10:30, 22:32, 2:5] = 2
    current = np.zeros(SHAPE, np.int32)
    current[10:30, 23:33, 2:5] = 1  # lesion 2 moved by 1 voxel, labelled 1 now
    current[10:30, 9:19, 2:5] = 2  # lesion 1 moved by 1 voxel, labelled 2 now
    matching = match_lesions(previous, current)
    assert sorted((m.previous_index, m.current_index) for m in matching.matches) == [(1, 2), (2, 1)]


def test_overlap_below_the_iou_threshold_is_new() -> None:
    previous = _block(SHAPE, (10, 30), (10, 30), (2, 8)).astype(np.int32)
    current = _block(SHAPE, (28, 40), (28, 40), (2, 8)).astype(np.int32)  # IoU = 4/(400+144-4) < 0.1
    matching = match_lesions(previous, current, iou_min=0.1)
    assert matching.new == (1,) and matching.disappeared == (1,)


def test_new_lesion_outside_the_rt_field() -> None:
    current = np.zeros(SHAPE, np.int32)
    current[10:20, 10:20, 2:5] = 1
    current[45:60, 45:60, 2:5] = 2
    field = _block(SHAPE, (0, 32), (0, 32), (0, 12))  # 80 % isodose mask
    assert not outside_field(current, 1, field)
    assert outside_field(current, 2, field)


def test_inside_fraction_parameter_is_used() -> None:
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[19:21, 8:32] = False  # a 2-pixel slit across the square
    mask = np.repeat(ring[:, :, None], 4, axis=2)
    strict = dataclasses.replace(RANO2, inside_fraction=1.0)
    _, loose = _lesions(mask, criteria=dataclasses.replace(RANO2, inside_fraction=0.9))
    _, tight = _lesions(mask, criteria=strict)
    assert loose[0].product_mm2 > tight[0].product_mm2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 2.0), (0.9, 1.3, 5.0)])
def test_skipping_slices_too_small_to_win_keeps_the_exhaustive_best_slice(spacing, monkeypatch) -> None:
    """Slices whose bounding box cannot hold a larger product are not measured; on irregular
    blobs and rings the chosen slice and its diameters are those of measuring every slice."""
    from scipy import ndimage

    from engine.lesions import components
    from engine.lesions.components import _best_slice

    calls = {"n": 0}
    measure = components.measure_slice

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        return measure(*args, **kwargs)

    monkeypatch.setattr(components, "measure_slice", counted)

    rng = np.random.default_rng(11)
    field = ndimage.gaussian_filter(rng.random((70, 60, 16)), sigma=(3.0, 3.0, 1.5))
    mask = field > np.percentile(field, 80)
    a, b = np.mgrid[0:70, 0:60]
    ring = (np.hypot(a - 35, b - 30) < 14) & (np.hypot(a - 33, b - 31) > 7)
    mask[:, :, 10:15] |= ring[:, :, None] & (rng.random((70, 60, 5)) > 0.05)
    ball = np.zeros((30, 60, 16), bool)  # a lesion that narrows towards its poles, apart from the rest
    i, j, k = np.indices(ball.shape)
    ball[np.hypot(np.hypot(i - 15, j - 30), (k - 8) * 2.0) < 11] = True
    mask = np.concatenate([mask, np.zeros((4, 60, 16), bool), ball])
    view = axial_view(Volume(mask.astype(np.uint8), np.diag([*spacing, 1.0])))
    labels, lesions = find_lesions(view.array.astype(bool), view=view, criteria=RANO2)
    assert len(lesions) >= 3
    measured = {True: 0, False: 0}
    for lesion in lesions:
        component = labels == lesion.lesion_index
        box = ndimage.find_objects(component.astype(np.int32))[0]
        results = {}
        for exhaustive in (True, False):
            before = calls["n"]
            results[exhaustive] = _best_slice(component[box], view, RANO2, exhaustive=exhaustive)
            measured[exhaustive] += calls["n"] - before
        assert results[False] == results[True]
    assert measured[False] < measured[True], measured  # the bound did skip slices


def test_components_labelled_in_the_masks_box_are_numbered_as_on_the_whole_grid() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(5)
    mask = np.zeros((60, 50, 20), bool)
    mask[12:40, 8:45, 4:15] = ndimage.gaussian_filter(rng.random((28, 37, 11)), 1.5) > 0.52
    view = axial_view(Volume(mask.astype(np.uint8), np.diag([1.0, 1.0, 2.0, 1.0])))
    labels, lesions = find_lesions(view.array.astype(bool), view=view, criteria=RANO2)
    whole, count = ndimage.label(view.array.astype(bool), structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(whole.ravel(), minlength=count + 1)
    keep = [v for v in range(1, count + 1) if sizes[v] * view.voxel_ml >= RANO2.min_component_ml]
    expected = np.zeros_like(whole)
    for new, old in enumerate(keep, start=1):
        expected[whole == old] = new
    assert len(keep) >= 3
    np.testing.assert_array_equal(labels, expected)
    assert [lesion.lesion_index for lesion in lesions] == list(range(1, len(keep) + 1))
    empty, none = find_lesions(np.zeros(view.array.shape, bool), view=view, criteria=RANO2)
    assert none == () and not empty.any() and empty.dtype == np.int32


def test_iou_matrix_counts_only_lesion_voxels_and_equals_the_dense_count() -> None:
    from engine.lesions.tracking import iou_matrix

    rng = np.random.default_rng(8)
    previous = rng.integers(0, 4, size=(20, 20, 10)) * (rng.random((20, 20, 10)) > 0.7)
    current = np.roll(previous, 2, axis=0) * (rng.random((20, 20, 10)) > 0.2)
    iou, prev_ids, curr_ids = iou_matrix(previous, current)
    for r, p in enumerate(prev_ids):
        for c, q in enumerate(curr_ids):
            a, b = previous == p, current == q
            assert iou[r, c] == pytest.approx((a & b).sum() / (a | b).sum())
