"""Image review arithmetic on small arrays whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.slices import (
    LABEL_COLOURS,
    Plane,
    apply_window,
    default_window,
    difference_rgb,
    extract_slice,
    matching_index,
    new_enhancement,
    overlay,
    pixel_mm,
    slice_count,
    to_physical_aspect,
    to_ras,
)
from engine.types import Label, Volume

SHAPE = (6, 5, 4)  # i: left->right, j: posterior->anterior, k: inferior->superior (RAS)


def _marked() -> np.ndarray:
    a = np.zeros(SHAPE)
    a[5, 2, 1] = 1  # far right
    a[2, 4, 1] = 2  # most anterior
    a[2, 2, 3] = 3  # most superior
    return a


def test_axial_slice_is_radiological_with_anterior_up() -> None:
    img = extract_slice(_marked(), Plane.AXIAL, 1)
    assert img.shape == (5, 6)  # rows = j, columns = i
    assert img[0, 6 - 1 - 2] == 2, "anterior at the top"
    assert img[5 - 1 - 2, 0] == 1, "patient's right on the screen's left"


def test_coronal_and_sagittal_have_superior_up() -> None:
    coronal = extract_slice(_marked(), Plane.CORONAL, 2)
    assert coronal.shape == (4, 6) and coronal[0, 6 - 1 - 2] == 3
    sagittal = extract_slice(_marked(), Plane.SAGITTAL, 2)
    assert sagittal.shape == (4, 5) and sagittal[0, 5 - 1 - 2] == 3
    assert sagittal[4 - 1 - 1, 0] == 2, "anterior on the left of a sagittal slice"


def test_slice_index_out_of_range_refused() -> None:
    assert slice_count(SHAPE, Plane.AXIAL) == 4
    with pytest.raises(ValueError, match=r"\[0, 3\] for the axial plane"):
        extract_slice(_marked(), Plane.AXIAL, 4)


def test_lps_volume_is_turned_to_ras() -> None:
    lps_affine = np.diag([-1.0, -1.0, 2.0, 1.0])  # i runs toward the left, j posterior
    array = np.zeros(SHAPE)
    array[0, 0, 0] = 7  # voxel (0,0,0) is the most right and anterior
    ras = to_ras(Volume(array, lps_affine))
    assert ras.array[5, 4, 0] == 7
    assert np.allclose(ras.affine @ [5, 4, 0, 1], lps_affine @ [0, 0, 0, 1]), "same world point"
    assert pixel_mm(ras, Plane.CORONAL) == (2.0, 1.0)


def test_matching_index_follows_world_position() -> None:
    a = Volume(np.zeros((4, 4, 10)), np.diag([1.0, 1.0, 2.0, 1.0]))
    shifted = np.diag([1.0, 1.0, 1.0, 1.0])
    shifted[2, 3] = 4.0  # b's slice 0 lies at z = 4 mm
    b = Volume(np.zeros((4, 4, 30)), shifted)
    assert matching_index(a, b, Plane.AXIAL, 5) == 6  # z = 10 mm -> b slice 6
    assert matching_index(a, b, Plane.AXIAL, 0) == 0  # z = 0 is below b: clamped


def test_window_maps_level_and_width() -> None:
    out = apply_window(np.array([[0.0, 50.0, 100.0, 150.0]]), level=100, width=100)
    assert out.tolist() == [[0, 0, 128, 255]]
    with pytest.raises(ValueError, match="'width' must be > 0"):
        apply_window(np.zeros((2, 2)), level=0, width=0)
    level, width = default_window(np.concatenate([np.zeros(50), np.linspace(100, 200, 201)]))
    assert level == pytest.approx(199.5 / 2) and width == pytest.approx(199.5)
    level, width = default_window(np.array([-100.0, 0.0, 100.0]))
    assert (level, width) == pytest.approx((0.5, 197.0))  # p1 = -98, p99.5 = 99


def test_overlay_colours_only_chosen_labels() -> None:
    grey = np.full((2, 2), 100, dtype=np.uint8)
    labels = np.array([[0, int(Label.ET)], [int(Label.NETC), int(Label.SNFH)]])
    rgb = overlay(grey, labels, show={Label.ET}, alpha=1.0)
    assert tuple(rgb[0, 1]) == LABEL_COLOURS[Label.ET]
    assert tuple(rgb[1, 0]) == (100, 100, 100) and tuple(rgb[0, 0]) == (100, 100, 100)
    with pytest.raises(ValueError, match="slice's shape"):
        overlay(grey, np.zeros((3, 3)))


def test_difference_and_new_enhancement() -> None:
    before, after = np.array([[10.0, 10.0]]), np.array([[30.0, 0.0]])
    rgb = difference_rgb(before, after, width=20)
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 1]) == (0, 0, 128)
    et, netc = int(Label.ET), int(Label.NETC)
    new = new_enhancement(np.array([[et, netc, 0]]), np.array([[et, et, et]]))
    assert new.tolist() == [[False, True, True]]
    with pytest.raises(ValueError, match="share a grid"):
        new_enhancement(np.zeros((2, 2)), np.zeros((2, 3)))


def test_physical_aspect_makes_pixels_square() -> None:
    rgb = np.zeros((10, 20, 3), dtype=np.uint8)  # rows 3 mm, columns 1 mm -> 30 mm x 20 mm
    out = to_physical_aspect(rgb, row_mm=3.0, col_mm=1.0, min_px=60)
    assert out.shape[0] / out.shape[1] == pytest.approx(30 / 20)
    assert out.shape[0] >= 60
