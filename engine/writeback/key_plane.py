"""The plane a key image shows (:mod:`engine.writeback.key_image`): the plane of the label grid
that holds the RANO lines, cut out of the T1c and the labels and turned the way a reader expects.

RANO measures in the plane the assessment chose (axial), which is not always the plane the T1c
was acquired in: a sagittal T1c holds axial lines across many of its images. So the plane is the
grid plane (normal to voxel axis i, j or k) across which the lines' points vary least, through
their mean; without lines, the acquisition plane (k) with the most labelled voxels. It is shown
as radiologists read: axial with anterior up and the patient's right on the left, coronal with
superior up and the right on the left, sagittal with superior up and anterior on the left
(DICOM PatientOrientation ``L\\P``, ``L\\F``, ``P\\F``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Volume

# patient axes in LPS order (x: R->L, y: A->P, z: F->H) and the letter of each direction
_LETTERS = (("R", "L"), ("A", "P"), ("F", "H"))


@dataclass(frozen=True, slots=True, eq=False)
class KeyPlane:
    """Which plane of the grid, and how its voxel axes become image rows and columns."""

    axis: int  # the voxel axis normal to the plane (2: the acquisition plane)
    index: int  # the plane's index along that axis
    row_axis: int  # the voxel axis along the image's rows (top to bottom)
    column_axis: int
    flip_rows: bool  # the voxel axis runs bottom to top
    flip_columns: bool
    spacing_mm: tuple[float, float]  # (between rows, between columns)
    orientation: tuple[str, str]  # DICOM PatientOrientation: (along a row, down a column)

    def cut(self, volume: np.ndarray) -> np.ndarray:
        """The plane of a 3-D array on the grid, as (rows, columns)."""
        plane = np.take(volume, self.index, axis=self.axis)
        remaining = [a for a in range(3) if a != self.axis]
        if remaining.index(self.row_axis) == 1:
            plane = plane.T
        return plane[::-1 if self.flip_rows else 1, ::-1 if self.flip_columns else 1]

    def pixels(self, voxels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """Voxel coordinates (n, 3) as (column, row) pixel indices of the cut plane."""
        rows, columns = voxels[:, self.row_axis], voxels[:, self.column_axis]
        if self.flip_rows:
            rows = shape[self.row_axis] - 1 - rows
        if self.flip_columns:
            columns = shape[self.column_axis] - 1 - columns
        return np.column_stack([columns, rows])


def key_plane(labels: Volume, lines: list[np.ndarray]) -> KeyPlane:
    """The plane holding ``lines`` (voxel coordinates), or the fullest acquisition plane."""
    shape = labels.array.shape
    if lines:
        points = np.concatenate(lines)
        axis = int(np.argmin(np.ptp(points, axis=0)))
        index = int(np.clip(round(float(np.mean(points[:, axis]))), 0, shape[axis] - 1))
    else:
        counts = np.count_nonzero(labels.array, axis=(0, 1))
        axis, index = 2, int(np.argmax(counts)) if counts.any() else shape[2] // 2
    return _oriented(axis, index, labels.affine)


def _oriented(axis: int, index: int, affine: np.ndarray) -> KeyPlane:
    lps = affine[:3, :3] * np.array([[-1.0], [-1.0], [1.0]])  # column a: voxel axis a in LPS mm
    patient_axis = {a: int(np.argmax(np.abs(lps[:, a]))) for a in range(3) if a != axis}
    in_plane = sorted(patient_axis, key=lambda a: patient_axis[a])
    # rows run down the body (z) when the plane holds it, else (axial) from anterior to posterior
    row_axis = max(in_plane, key=lambda a: patient_axis[a])
    column_axis = next(a for a in in_plane if a != row_axis)
    row_towards = 0 if patient_axis[row_axis] == 2 else 1  # z: downwards (F); y: to posterior (P)
    column_towards = 1  # x: to the patient's left; y (sagittal): to posterior
    flip_rows = (lps[patient_axis[row_axis], row_axis] > 0) != bool(row_towards)
    flip_columns = (lps[patient_axis[column_axis], column_axis] > 0) != bool(column_towards)
    spacing = tuple(float(np.linalg.norm(lps[:, a])) for a in (row_axis, column_axis))
    orientation = (_LETTERS[patient_axis[column_axis]][column_towards],
                   _LETTERS[patient_axis[row_axis]][row_towards])
    return KeyPlane(axis, index, row_axis, column_axis, bool(flip_rows), bool(flip_columns),
                    (spacing[0], spacing[1]), orientation)
