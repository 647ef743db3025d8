"""Sanity checks: problems with a label volume become flags people see."""

from __future__ import annotations

import numpy as np
import pytest

from engine.segmentation.sanity import SanityLimits, check_labels, label_volumes_ml, remove_small_cavities, sanity_flags
from engine.types import Label


def _ball(shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return np.linalg.norm(grid - np.array(centre), axis=-1) <= radius


def test_volumes_of_a_ball_on_an_anisotropic_grid() -> None:
    # 1 x 1 x 2 mm voxels: a ball of radius 10 mm is radius 10, 10, 5 voxels
    shape = (40, 40, 20)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1) * np.array([1.0, 1.0, 2.0])
    ball = np.linalg.norm(grid - np.array([20.0, 20.0, 20.0]), axis=-1) <= 10.0
    labels = np.zeros(shape, np.uint8)
    labels[ball] = int(Label.ET)
    volumes = label_volumes_ml(labels, voxel_ml=2.0 / 1000.0)
    assert volumes["ET"] == pytest.approx(4.0 / 3.0 * np.pi * 1000.0 / 1000.0, rel=0.03)
    assert volumes["NETC"] == volumes["SNFH"] == volumes["RC"] == 0.0


@pytest.mark.parametrize(
    ("case", "volumes", "tumour", "outside", "expected"),
    [
        ("plausible tumour", {"NETC": 2.0, "SNFH": 40.0, "ET": 8.0, "RC": 5.0}, 100, 0, ()),
        ("no tumour found", {"NETC": 0.0, "SNFH": 0.0, "ET": 0.0, "RC": 3.0}, 0, 0, ("empty_output",)),
        ("tumour outside the brain", {"NETC": 0.0, "SNFH": 10.0, "ET": 1.0, "RC": 0.0}, 100, 30, ("tumour_outside_brain",)),
        ("oedema of 900 mL", {"NETC": 0.0, "SNFH": 900.0, "ET": 1.0, "RC": 0.0}, 100, 0,
         ("implausible_volume:SNFH=900mL", "implausible_volume:total=901mL")),
    ],
)
def test_sanity_flags(case: str, volumes: dict, tumour: int, outside: int, expected: tuple) -> None:
    flags = sanity_flags(volumes_ml=volumes, tumour_voxels=tumour, tumour_outside_head_voxels=outside, head_ml=1400.0)
    assert flags == expected, case


def test_check_labels_flags_a_tumour_outside_the_head() -> None:
    shape = (30, 30, 30)
    head = _ball(shape, (15, 15, 15), 10)
    labels = np.zeros(shape, np.uint8)
    labels[_ball(shape, (3, 3, 3), 2.5)] = int(Label.SNFH)
    volumes, flags = check_labels(labels, head_mask=head, voxel_ml=0.001)
    assert "tumour_outside_brain" in flags
    assert volumes["SNFH"] > 0


def test_check_labels_of_an_empty_result() -> None:
    shape = (10, 10, 10)
    _, flags = check_labels(np.zeros(shape, np.uint8), head_mask=np.ones(shape, bool), voxel_ml=1.0)
    assert flags == ("empty_output",)


def test_limits_are_configurable() -> None:
    flags = sanity_flags(volumes_ml={"ET": 30.0}, tumour_voxels=5, tumour_outside_head_voxels=0, head_ml=0.0,
                         limits=SanityLimits(max_ml={"ET": 20.0}))
    assert flags == ("implausible_volume:ET=30mL",)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="Argument 'head_mask' must have the shape"):
        check_labels(np.zeros((2, 2, 2), np.uint8), head_mask=np.ones((3, 3, 3), bool), voxel_ml=1.0)


@pytest.mark.parametrize(
    ("rc_ml", "scan_day", "surgery_day", "expected"),
    [
        (0.9, 5, 9, "cavity_before_surgery:RC=0.9mL"),  # before the first surgery, over the limit
        (0.5, 5, 9, None),  # at the limit: a speck, not flagged
        (0.9, 9, 9, None),  # the surgery's own day: an intra- or post-operative scan may show it
        (12.0, 20, 9, None),  # after surgery: a cavity is expected
        (12.0, 5, None, "cavity_without_recorded_surgery:RC=12.0mL"),  # a cavity needs a surgery
        (0.4, 5, None, None),  # no surgery recorded, a speck under the limit
    ],
)
def test_cavity_before_the_first_surgery(rc_ml: float, scan_day: int, surgery_day: int | None,
                                         expected: str | None) -> None:
    from datetime import date

    from engine.segmentation.sanity import cavity_before_surgery_flag

    surgery = date(2026, 1, surgery_day) if surgery_day else None
    assert cavity_before_surgery_flag(rc_ml=rc_ml, scan_date=date(2026, 1, scan_day), first_surgery=surgery) == expected
    assert cavity_before_surgery_flag(rc_ml=rc_ml, scan_date=date(2026, 1, scan_day), first_surgery=surgery,
                                      limits=SanityLimits(max_rc_before_surgery_ml=20.0)) is None


def test_small_cavity_components_become_background_and_large_ones_stay() -> None:
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 4  # 216 voxels: a cavity
    labels[15, 15, 15] = 4  # a speck
    labels[12, 12, 12] = 4  # two voxels touching only at a corner: one 26-connected component
    labels[13, 13, 13] = 4
    labels[10:12, 2:4, 2:4] = 3  # ET is never touched
    out, removed = remove_small_cavities(labels, voxel_ml=0.01, min_ml=0.05)
    assert removed == pytest.approx(0.03)
    assert (out == 4).sum() == 216 and (out == 3).sum() == 8
    assert out[15, 15, 15] == 0 and out[12, 12, 12] == 0 and labels[15, 15, 15] == 4  # the input is not changed
    # the corner-touching pair counts as one component of 0.02 mL: kept at a 0.015 mL limit
    out, removed = remove_small_cavities(labels, voxel_ml=0.01, min_ml=0.015)
    assert removed == pytest.approx(0.01) and out[12, 12, 12] == 4 and out[15, 15, 15] == 0


@pytest.mark.parametrize("labels", [np.zeros((4, 4, 4), np.uint8), np.full((4, 4, 4), 4, np.uint8)])
def test_no_limit_or_nothing_small_returns_the_labels_as_they_are(labels: np.ndarray) -> None:
    out, removed = remove_small_cavities(labels, voxel_ml=1.0, min_ml=0.0)
    assert out is labels and removed == 0.0
    out, removed = remove_small_cavities(labels, voxel_ml=1.0, min_ml=10.0)
    assert out is labels and removed == 0.0  # 64 mL of cavity (or none) is not under 10 mL


def test_sanity_doctests() -> None:
    import doctest

    from engine.segmentation import sanity

    failures, tried = doctest.testmod(sanity, raise_on_error=False, verbose=False)[:2]
    assert tried >= 2 and failures == 0
