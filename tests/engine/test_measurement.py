"""Volumes and bidimensional products on small synthetic arrays whose answer is known from geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.criteria import load_criteria
from engine.lesions import axial_view, measure_slice
from engine.measurement import followup_spd, label_volumes, measure_study
from engine.lesions.tracking import match_lesions
from engine.types import Label, Volume

MEAS = load_criteria("rano2").measurability
GRID_1x1x2 = np.diag([1.0, 1.0, 2.0, 1.0])


def ellipse_mask(shape: tuple[int, int], d1_mm: float, d2_mm: float, *, spacing_mm=(1.0, 1.0),
                 angle_deg: float = 0.0, centre=None) -> np.ndarray:
    """Pixels (a, b) whose centre lies in an ellipse of full axes d1 x d2 mm."""
    a, b = np.mgrid[0 : shape[0], 0 : shape[1]]
    ca, cb = centre if centre else ((shape[0] - 1) / 2, (shape[1] - 1) / 2)
    x, y = (a - ca) * spacing_mm[0], (b - cb) * spacing_mm[1]
    t = math.radians(angle_deg)
    u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return (u / (d1_mm / 2)) ** 2 + (v / (d2_mm / 2)) ** 2 <= 1.0


def ball(shape, radius_mm, spacing, centre_vox) -> np.ndarray:
    i, j, k = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]]
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((i, j, k), centre_vox, spacing, strict=True))
    return d2 <= radius_mm**2


def test_box_volumes_are_exact_on_an_anisotropic_grid() -> None:
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[2:12, 2:12, 2:7] = Label.ET  # 10 x 10 x 5 voxels of 2 mm³ = 1.0 mL
    labels[12:17, 2:12, 2:7] = Label.NETC  # 0.5 mL
    labels[2:12, 12:18, 2:7] = Label.SNFH  # 0.6 mL
    labels[0:2, 0:5, 0:5] = Label.RC  # 0.1 mL
    v = label_volumes(Volume(labels, GRID_1x1x2))
    assert (v.et_ml, v.netc_ml, v.snfh_ml, v.rc_ml) == pytest.approx((1.0, 0.5, 0.6, 0.1))
    assert v.tc_ml == pytest.approx(1.5) and v.wt_ml == pytest.approx(2.1)


def test_ball_volume_matches_four_thirds_pi_r_cubed() -> None:
    labels = ball((40, 40, 20), 15.0, (1, 1, 2), (20, 20, 10)).astype(np.uint8) * Label.ET
    expected_ml = 4 / 3 * math.pi * 15.0**3 / 1000
    assert label_volumes(Volume(labels, GRID_1x1x2)).et_ml == pytest.approx(expected_ml, rel=0.03)


def test_labels_outside_0_to_4_are_refused() -> None:
    with pytest.raises(ValueError, match="outside 0-4"):
        label_volumes(Volume(np.full((2, 2, 2), 7, np.uint8), np.eye(4)))


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 90.0], ids=lambda a: f"ellipse 40x20 mm at {a:g} deg")
def test_ellipse_gives_its_axes_as_d1_and_d2(angle_deg: float) -> None:
    mask = ellipse_mask((60, 60), 40.0, 20.0, angle_deg=angle_deg)
    found = measure_slice(mask, plane_mm=np.eye(2))
    assert found.d1_mm == pytest.approx(40.0, abs=1.0)  # edge to edge: within one pixel
    assert found.d2_mm == pytest.approx(20.0, abs=1.0)


def test_anisotropic_pixels_are_measured_in_mm() -> None:
    spacing = (0.5, 1.0)  # a: 0.5 mm, b: 1 mm
    mask = ellipse_mask((100, 50), 40.0, 20.0, spacing_mm=spacing)  # 40 mm along a
    found = measure_slice(mask, plane_mm=np.diag(spacing))
    assert found.d1_mm == pytest.approx(40.0, abs=1.0)
    assert found.d2_mm == pytest.approx(20.0, abs=1.0)


def test_crescent_d2_must_cross_d1_and_stay_inside() -> None:
    disc = ellipse_mask((60, 60), 40.0, 40.0)
    bite = ellipse_mask((60, 60), 40.0, 40.0, centre=(29.5 + 12, 29.5))
    found = measure_slice(disc & ~bite, plane_mm=np.eye(2))
    # the longest chord of a crescent is much longer than its thickness; d2 is bounded by it
    assert found.d1_mm > 30.0
    assert found.d2_mm < 20.0


def test_study_measurement_of_an_elliptic_cylinder() -> None:
    labels = np.zeros((60, 60, 12), np.uint8)
    labels[:, :, 3:9][ellipse_mask((60, 60), 40.0, 20.0)] = Label.ET  # 6 slices of 2 mm
    m = measure_study(Volume(labels, GRID_1x1x2), criteria=MEAS)
    (lesion,) = m.lesions
    assert lesion.measurable and lesion.n_slices == 6
    assert m.spd_mm2 == pytest.approx(40.0 * 20.0, rel=0.08)
    assert m.target_indices == (1,)
    assert m.sov_all_ml == pytest.approx(m.volumes.et_ml)


def test_cavity_and_necrosis_are_not_measured() -> None:
    labels = np.zeros((60, 60, 12), np.uint8)
    outer = ellipse_mask((60, 60), 40.0, 40.0)
    inner = ellipse_mask((60, 60), 34.0, 34.0)
    labels[:, :, 3:9][outer] = Label.ET
    labels[:, :, 3:9][inner] = Label.RC  # a 3 mm enhancing rim around a resection cavity
    m = measure_study(Volume(labels, GRID_1x1x2), criteria=MEAS)
    assert m.volumes.rc_ml > 0
    assert all(not lesion.measurable for lesion in m.lesions)
    assert m.spd_mm2 == 0.0


def test_sagittal_grid_is_measured_on_the_axis_closest_to_superior_inferior() -> None:
    # voxel axes: i -> anterior (1 mm), j -> superior (2 mm), k -> right (1 mm)
    affine = np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 1]])
    labels = np.zeros((60, 12, 60), np.uint8)
    for j in range(3, 9):
        labels[:, j, :][ellipse_mask((60, 60), 40.0, 20.0)] = Label.ET  # 40 mm along A-P
    view = axial_view(Volume(labels, affine))
    assert view.axes[2] == 1 and view.slice_thickness_mm == pytest.approx(2.0) and view.obliquity_deg == 0.0
    m = measure_study(Volume(labels, affine), criteria=MEAS)
    assert m.lesions[0].d1_mm == pytest.approx(40.0, abs=1.0)
    assert m.lesions[0].d2_mm == pytest.approx(20.0, abs=1.0)
    assert m.component_labels.shape == labels.shape


def test_sixty_mm_ball_measures_its_diameter() -> None:
    labels = ball((70, 70, 36), 30.0, (1, 1, 2), (35, 35, 18)).astype(np.uint8) * Label.ET
    m = measure_study(Volume(labels, GRID_1x1x2), criteria=MEAS)
    assert m.lesions[0].d1_mm == pytest.approx(60.0, abs=1.5)
    assert m.lesions[0].d2_mm == pytest.approx(60.0, abs=1.5)


def test_followup_spd_sums_a_split_target_and_zeroes_a_vanished_one() -> None:
    base = np.zeros((60, 60, 10), np.uint8)
    base[5:35, 5:25, 2:6] = Label.ET  # target 1: 30 x 20 mm
    base[40:55, 40:55, 2:6] = Label.ET  # target 2: 15 x 15 mm
    baseline = measure_study(Volume(base, GRID_1x1x2), criteria=MEAS)
    follow = np.zeros_like(base)
    follow[5:18, 5:25, 2:6] = Label.ET  # target 1 split in two 13 x 20 mm pieces
    follow[22:35, 5:25, 2:6] = Label.ET
    current = measure_study(Volume(follow, GRID_1x1x2), criteria=MEAS, target_indices=())
    matching = match_lesions(baseline.component_labels, current.component_labels, iou_min=MEAS.new_lesion_iou)
    spd = followup_spd(baseline_targets=baseline.target_indices, matching=matching, lesions=current.lesions)
    pieces = sum(lesion.product_mm2 for lesion in current.lesions)
    assert len(current.lesions) == 2 and spd == pytest.approx(pieces)
    assert matching.disappeared == (2,)
