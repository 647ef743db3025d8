"""Diameters a reader measures by clicking on the T1c slice: clicks -> world mm -> d1 and d2. Pure.

The reader clicks the two ends of the longest diameter (d1), then the two ends of the
perpendicular one (d2), on an axial slice of the later scan as image review shows it. A click
arrives as a point of the chart (:func:`click_grid`: one selectable point per displayed pixel, at
``x = column * column_mm``, ``y = row * row_mm``), becomes a displayed pixel
(:func:`pixel_of_point`) and then a world point with the slice's affine
(:func:`dashboard.rano_lines.world_of_display`, the mapping that draws the stored RANO lines,
inverted). Lengths are measured in world mm, so they hold on any grid, oblique ones included.

The result is what the typed form enters: one ``SET_DIAMETERS`` board request with d1 and d2
(to 0.1 mm; the longer pair is d1 whatever the click order); the angle between them is reported against the
criteria's perpendicularity tolerance, for the reader to judge. For a lesion the model missed it is the
typed form's ``RECORD_NEW_LESION`` request with d1, d2 and the clicked ends in world mm
(:meth:`ClickedDiameters.world_ends`, stored with the reader's value and drawn from there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dashboard.rano_lines import DrawnLesion, Pixel, display_of_world, world_of_display
from engine.types import Volume

#: clicks per measurement: d1's two ends, then d2's.
N_CLICKS = 4


def click_grid(shape: tuple[int, int], *, row_mm: float, col_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Chart coordinates (x, y) of every pixel centre of a displayed slice of ``shape`` (rows, columns).

    >>> xs, ys = click_grid((2, 3), row_mm=2.0, col_mm=1.0)
    >>> xs.tolist(), ys.tolist()
    ([0.0, 1.0, 2.0, 0.0, 1.0, 2.0], [0.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    """
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return cols.ravel() * float(col_mm), rows.ravel() * float(row_mm)


def pixel_of_point(x: float, y: float, *, row_mm: float, col_mm: float) -> Pixel:
    """The displayed pixel (row, column) of a chart point.

    >>> pixel_of_point(4.0, 6.0, row_mm=2.0, col_mm=1.0)
    (3.0, 4.0)
    """
    return (float(y) / float(row_mm), float(x) / float(col_mm))


@dataclass(frozen=True, slots=True)
class ClickedDiameters:
    """What the clicks so far measure: world ends in click order, and the diameters once complete."""

    ends_mm: tuple[np.ndarray, ...]
    d1_mm: float | None = None
    d2_mm: float | None = None
    angle_deg: float | None = None  # between d1 and d2, 0..90
    swapped: bool = False  # the second pair of clicks was the longer one: it is d1

    @property
    def complete(self) -> bool:
        return self.d1_mm is not None and self.d2_mm is not None

    def perpendicular(self, tolerance_deg: float) -> bool:
        return self.angle_deg is not None and self.angle_deg >= 90.0 - tolerance_deg

    def drawn(self, volume: Volume) -> DrawnLesion | None:
        """The clicked segments in display pixels of ``volume`` (for ``draw_segments``), or None."""
        if len(self.ends_mm) < 2:
            return None
        pixels = [display_of_world(volume, p)[0] for p in self.ends_mm]
        pairs = [(pixels[0], pixels[1]), (pixels[2], pixels[3]) if len(pixels) == N_CLICKS else None]
        if self.swapped:
            pairs.reverse()
        return DrawnLesion(-1, pairs[0], pairs[1])  # type: ignore[arg-type]


    def world_ends(self) -> dict[str, str]:
        """The four ends as the store keeps diameter ends: JSON ``[x, y, z]`` world mm (to 1 µm),
        keyed ``d1_p0, d1_p1, d2_p0, d2_p1`` with d1 the longer pair whatever the click order.

        >>> vol = Volume(np.zeros((10, 10, 3)), np.diag([0.5, 0.5, 3.0, 1.0]))
        >>> measure_clicks(vol, [(0, 5), (6, 5), (2, 1), (2, 9)], 1).world_ends()["d1_p0"]
        '[4.0, 3.5, 3.0]'
        """
        if not self.complete:
            msg = f"The clicks must be complete ({N_CLICKS}) to give the diameter ends, got {len(self.ends_mm)}"
            raise ValueError(msg)
        ends = list(self.ends_mm[2:]) + list(self.ends_mm[:2]) if self.swapped else list(self.ends_mm)
        keys = ("d1_p0", "d1_p1", "d2_p0", "d2_p1")
        return {k: json.dumps([round(float(v), 3) for v in p]) for k, p in zip(keys, ends, strict=True)}


def _length(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.subtract(b, a)))


def measure_clicks(volume: Volume, clicks: Sequence[Pixel], index: float) -> ClickedDiameters:
    """The diameters the first :data:`N_CLICKS` ``clicks`` (display pixels on axial slice ``index``
    of ``volume``, RAS order as image review shows it) measure.

    >>> vol = Volume(np.zeros((10, 10, 3)), np.diag([0.5, 0.5, 3.0, 1.0]))
    >>> m = measure_clicks(vol, [(2, 1), (2, 9), (0, 5), (6, 5)], 1)  # 8 px across, then 6 px down
    >>> m.d1_mm, m.d2_mm, m.angle_deg
    (4.0, 3.0, 90.0)
    >>> measure_clicks(vol, [(0, 5), (6, 5), (2, 1), (2, 9)], 1).d1_mm  # the longer pair is d1
    4.0
    """
    if len(clicks) > N_CLICKS:
        msg = f"Argument 'clicks' must hold at most {N_CLICKS} points (d1's ends, then d2's), got {len(clicks)}"
        raise ValueError(msg)
    ends = tuple(world_of_display(volume, p, index) for p in clicks)
    if len(ends) < N_CLICKS:
        return ClickedDiameters(ends, d1_mm=round(_length(ends[0], ends[1]), 1) if len(ends) >= 2 else None)
    first, second = np.subtract(ends[1], ends[0]), np.subtract(ends[3], ends[2])
    a, b = float(np.linalg.norm(first)), float(np.linalg.norm(second))
    if a == 0.0 or b == 0.0:
        return ClickedDiameters(ends, d1_mm=round(max(a, b), 1), d2_mm=round(min(a, b), 1), swapped=b > a)
    cosine = abs(float(np.dot(first, second))) / (a * b)
    angle = float(np.degrees(np.arccos(min(cosine, 1.0))))
    return ClickedDiameters(ends, d1_mm=round(max(a, b), 1), d2_mm=round(min(a, b), 1), angle_deg=round(angle, 1),
                            swapped=b > a)
