"""Lesion identity across timepoints: IoU + Hungarian matching in the registered (baseline) space.

Both inputs are component label arrays on the **same grid** (the follow-up resampled into the
baseline space by the registration step). One-to-one identities come from
``scipy.optimize.linear_sum_assignment`` on the IoU matrix, accepted when IoU >= ``iou_min``;
optionally a second pass matches what is left by proximity (``gap_vox``, see
:func:`match_lesions`). A current component left unmatched that still overlaps a matched
previous lesion is a fragment of it (a split lesion: its product is summed into that lesion);
any other unmatched component is a **new lesion** (clinical-spec 8.2). Previous lesions with no
current match have disappeared (product 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True, slots=True)
class LesionMatch:
    previous_index: int
    current_index: int
    iou: float
    by_proximity: bool = False  # matched in the second pass (within the gap), not by IoU


@dataclass(frozen=True, slots=True)
class Matching:
    matches: tuple[LesionMatch, ...]
    fragments: tuple[tuple[int, int], ...]  # (previous_index, current_index) split pieces
    new: tuple[int, ...]  # current indices with no previous lesion
    disappeared: tuple[int, ...]  # previous indices with no current lesion

    def current_for(self, previous_index: int) -> tuple[int, ...]:
        """Every current component that continues a previous lesion (match and fragments)."""
        found = [m.current_index for m in self.matches if m.previous_index == previous_index]
        return tuple(found + [c for p, c in self.fragments if p == previous_index])


def iou_matrix(previous: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU between every previous label (rows) and current label (columns), and the label values."""
    if previous.shape != current.shape:
        msg = f"Label arrays must share a grid, got {previous.shape} and {current.shape}"
        raise ValueError(msg)
    # only voxels inside a lesion of either array count (lesions are a small part of the grid)
    either = (previous > 0) | (current > 0)
    previous, current = previous[either], current[either]
    prev_ids = np.unique(previous[previous > 0])
    curr_ids = np.unique(current[current > 0])
    if prev_ids.size == 0 or curr_ids.size == 0:
        return np.zeros((prev_ids.size, curr_ids.size)), prev_ids, curr_ids
    p = np.searchsorted(prev_ids, previous) + 1
    p[previous == 0] = 0
    c = np.searchsorted(curr_ids, current) + 1
    c[current == 0] = 0
    joint = np.bincount(p * (curr_ids.size + 1) + c, minlength=(prev_ids.size + 1) * (curr_ids.size + 1))
    joint = joint.reshape(prev_ids.size + 1, curr_ids.size + 1)
    inter = joint[1:, 1:].astype(float)
    prev_sizes = joint[1:, :].sum(axis=1)[:, None]
    curr_sizes = joint[:, 1:].sum(axis=0)[None, :]
    union = prev_sizes + curr_sizes - inter
    return inter / np.maximum(union, 1), prev_ids, curr_ids


def match_lesions(previous: np.ndarray, current: np.ndarray, *, iou_min: float = 0.1, gap_vox: int = 0) -> Matching:
    """Match current components to previous lesions (same grid), see the module docstring.

    ``gap_vox`` > 0 adds a second pass: an unmatched current component that overlaps an unmatched
    previous lesion dilated by ``gap_vox`` voxels (26-connected steps) continues that lesion (a
    lesion that grew or shrank so much that IoU fell below ``iou_min``, e.g. an enhancing rim
    thickening outward). Pairs are again assigned by the Hungarian method, on that overlap.
    """
    iou, prev_ids, curr_ids = iou_matrix(previous, current)
    matches: list[LesionMatch] = []
    if iou.size:
        rows, cols = linear_sum_assignment(-iou)
        matches = [LesionMatch(int(prev_ids[r]), int(curr_ids[c]), float(iou[r, c]))
                   for r, c in zip(rows, cols, strict=True) if iou[r, c] >= iou_min]
    if gap_vox > 0:
        matches += _proximity_matches(previous, current, prev_ids, curr_ids, iou, matches, gap_vox)
    matched_curr = {m.current_index for m in matches}
    matched_prev = {m.previous_index for m in matches}
    fragments, new = [], []
    for col, cid in enumerate(curr_ids.tolist()):
        if cid in matched_curr:
            continue
        column = iou[:, col] if iou.size else np.zeros(0)
        best = int(prev_ids[int(np.argmax(column))]) if column.size and column.max() > 0 else None
        if best is not None and best in matched_prev:
            fragments.append((best, int(cid)))
        else:
            new.append(int(cid))
    disappeared = tuple(int(p) for p in prev_ids.tolist() if p not in matched_prev)
    return Matching(tuple(matches), tuple(fragments), tuple(new), disappeared)


def _proximity_matches(previous: np.ndarray, current: np.ndarray, prev_ids: np.ndarray, curr_ids: np.ndarray,
                       iou: np.ndarray, matches: list[LesionMatch], gap_vox: int) -> list[LesionMatch]:
    left_prev = [int(p) for p in prev_ids.tolist() if p not in {m.previous_index for m in matches}]
    left_curr = [int(c) for c in curr_ids.tolist() if c not in {m.current_index for m in matches}]
    if not left_prev or not left_curr:
        return []
    overlap = np.zeros((len(left_prev), len(left_curr)))
    ball = ndimage.generate_binary_structure(3, 3)
    for r, pid in enumerate(left_prev):
        grown = ndimage.binary_dilation(previous == pid, structure=ball, iterations=gap_vox)
        hits = np.bincount(current[grown].ravel(), minlength=int(curr_ids.max()) + 1)
        overlap[r] = [hits[c] for c in left_curr]
    rows, cols = linear_sum_assignment(-overlap)
    p_index = {int(p): k for k, p in enumerate(prev_ids.tolist())}
    c_index = {int(c): k for k, c in enumerate(curr_ids.tolist())}
    return [LesionMatch(left_prev[r], left_curr[c], float(iou[p_index[left_prev[r]], c_index[left_curr[c]]]), True)
            for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0]


def outside_field(current: np.ndarray, lesion_index: int, field_mask: np.ndarray) -> bool:
    """Whether a lesion lies wholly outside the RT field (e.g. the 80 % isodose mask), same grid."""
    return not bool(np.any(field_mask[current == lesion_index]))
