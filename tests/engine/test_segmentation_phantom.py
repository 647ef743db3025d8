"""A tiny synthetic head with a tumour whose geometry is known: test data for the segmentation tests
(imported by the other test_segmentation_*.py files), and a check of the helper itself."""

from __future__ import annotations

import numpy as np
import pytest

from engine.types import Label, Sequence, Volume

def tiny_config(name: str, *, spacing_mm: float) -> dict:
    """The config of a tiny 2-level UNet (4-8 channels) the segmentation tests build and run."""
    return {
        "name": name,
        "version": "0.0.1",
        "architecture": "UNet",
        "network": {"in_channels": 4, "channels": [4, 8], "strides": [2], "num_res_units": 0},
        "channels": ["T1", "T1c", "T2", "FLAIR"],
        "output_labels": {"1": "NETC", "2": "SNFH", "3": "ET", "4": "RC"},
        "spacing_mm": spacing_mm,
        "divisible_by": 8,
    }


#: tissue -> intensity per sequence (T1, T1c, T2, FLAIR).
_INTENSITY = {
    "head": (600.0, 620.0, 500.0, 450.0),
    Label.SNFH: (520.0, 540.0, 900.0, 1000.0),
    Label.ET: (600.0, 1400.0, 700.0, 800.0),
    Label.NETC: (300.0, 320.0, 1200.0, 600.0),
}


def phantom_labels(shape: tuple[int, int, int], *, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(head mask, labels) on an RAS grid: an ellipsoid head with a layered spherical tumour."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * spacing_mm for n in shape], indexing="ij"), axis=-1)
    centre = (np.array(shape) - 1) * spacing_mm / 2.0
    radii = np.array(shape) * spacing_mm * 0.42
    head = (((grid - centre) / radii) ** 2).sum(-1) <= 1.0
    tumour_centre = centre + np.array([0.18, 0.1, 0.05]) * np.array(shape) * spacing_mm
    r = np.linalg.norm(grid - tumour_centre, axis=-1)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[(r <= 14.0) & head] = int(Label.SNFH)
    labels[(r <= 9.0) & head] = int(Label.ET)
    labels[(r <= 5.0) & head] = int(Label.NETC)
    return head, labels


def phantom_study(
    *, shape: tuple[int, int, int] = (40, 48, 40), spacing_mm: float = 2.0, seed: int = 0
) -> tuple[dict[Sequence, Volume], np.ndarray]:
    """Four co-registered sequences (RAS grid, origin at -extent/2) and the true labels."""
    rng = np.random.default_rng(seed)
    head, labels = phantom_labels(shape, spacing_mm=spacing_mm)
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = -np.array(shape) * spacing_mm / 2.0
    volumes = {}
    for index, seq in enumerate((Sequence.T1, Sequence.T1C, Sequence.T2, Sequence.FLAIR)):
        image = np.zeros(shape, dtype=np.float32)
        image[head] = _INTENSITY["head"][index]
        for label in (Label.SNFH, Label.ET, Label.NETC):
            image[labels == int(label)] = _INTENSITY[label][index]
        image += rng.normal(0.0, 10.0, size=shape).astype(np.float32)
        volumes[seq] = Volume(np.clip(image, 0, None), affine.copy())
    return volumes, labels


def test_phantom_tumour_volumes_match_the_sphere_geometry() -> None:
    """The helper itself: layered balls of radius 5, 9, 14 mm (well inside the head)."""
    _, labels = phantom_study(shape=(60, 60, 60), spacing_mm=1.0)
    voxel_ml = 1.0 / 1000.0
    ball = lambda r: 4.0 / 3.0 * np.pi * r**3 / 1000.0  # noqa: E731
    assert (labels == int(Label.NETC)).sum() * voxel_ml == pytest.approx(ball(5.0), rel=0.1)
    assert (labels == int(Label.ET)).sum() * voxel_ml == pytest.approx(ball(9.0) - ball(5.0), rel=0.05)
    assert (labels == int(Label.SNFH)).sum() * voxel_ml == pytest.approx(ball(14.0) - ball(9.0), rel=0.05)
