"""Study volumes -> one normalised multi-channel tensor on the model's working grid.

Steps (MONAI transforms, torch imported inside the functions):

1. the reference (T1c, else T1) defines the output grid and the field of view;
2. a working grid axis-aligned in RAS world space at the model's spacing covers the reference's
   field of view, so a sagittal or oblique acquisition reaches the network in the orientation it
   was trained on;
3. every present sequence is resampled from its own grid onto the working grid in world space
   (trilinear, separable between axis-aligned grids, else MONAI ``SpatialResample``: different
   planes, voxel sizes and positions are handled by the affines). With ``align`` a sequence the
   patient moved between is first rigidly realigned onto the reference, when that is needed and
   trustworthy (:mod:`engine.segmentation.alignment`); otherwise the DICOM geometry is trusted;
4. a head crop on the reference channel, on the network stride's lattice of the working grid
   (:func:`head_box`); the other sequences are resampled straight onto that crop;
5. per-channel z-score with the mean and standard deviation of the head voxels, zero outside
   the head (background noise of real scanners neither shifts the statistics nor reaches the
   network); a missing sequence stays an all-zero channel, as in training with modality dropout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.arrays import bounding_box
from engine.errors import SegmentationError
from engine.segmentation.threads import in_threads, slabs, workers_for
from engine.types import Sequence, Volume

if TYPE_CHECKING:
    import torch

#: reference grid candidates, best first.
REFERENCE_ORDER: tuple[Sequence, ...] = (Sequence.T1C, Sequence.T1)
#: a voxel belongs to the head when the smoothed reference is above this fraction of its 99th percentile.
HEAD_THRESHOLD_FRACTION = 0.15
#: margin around the head bounding box, in working voxels.
HEAD_MARGIN_VOX = 2


@dataclass(frozen=True, slots=True, eq=False)
class PreparedStudy:
    """The network input and the geometry needed to bring the prediction back."""

    #: (C, X, Y, Z) float32, normalised, on the cropped working grid.
    image: torch.Tensor
    #: voxel -> RAS mm of the cropped working grid.
    working_affine: np.ndarray
    #: (X, Y, Z) bool head mask on the cropped working grid.
    head_mask: np.ndarray
    #: the volume whose grid the labels are written on.
    reference: Volume
    reference_sequence: Sequence
    missing: tuple[Sequence, ...]
    #: one decision per non-reference sequence when alignment ran (empty when it did not).
    alignments: tuple = ()


def choose_reference(volumes: Mapping[Sequence, Volume]) -> Sequence:
    """The sequence whose grid the labels are written on: T1c, else T1."""
    for seq in REFERENCE_ORDER:
        if seq in volumes:
            return seq
    present = ", ".join(str(s) for s in volumes) or "none"
    msg = f"Neither a post-contrast T1 nor a plain T1 is available (present: {present})"
    raise SegmentationError(
        msg, action="Check the series classification; segmentation needs at least a T1c or a T1."
    )


def working_grid(
    reference: Volume, *, spacing_mm: float, multiple_of: int = 1
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An RAS-aligned grid at ``spacing_mm`` that covers the reference's field of view.

    With ``multiple_of`` > 1 every side is rounded up to a multiple of it, the grid growing
    equally on both sides (see :func:`prepare_study` for why).

    >>> ref = Volume(np.zeros((10, 10, 4)), np.diag([1.0, 1.0, 5.0, 1.0]))
    >>> affine, shape = working_grid(ref, spacing_mm=2.0)
    >>> shape
    (5, 5, 10)
    >>> working_grid(ref, spacing_mm=2.0, multiple_of=8)[1]
    (8, 8, 16)
    """
    shape = np.array(reference.array.shape, dtype=float)
    corners = np.array(
        [[i, j, k, 1.0] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5) for k in (-0.5, shape[2] - 0.5)]
    )
    world = (reference.affine @ corners.T).T[:, :3]
    low, high = world.min(axis=0), world.max(axis=0)
    size = np.maximum(np.round((high - low) / spacing_mm).astype(int), 1)
    if multiple_of > 1:
        padded = -(-size // multiple_of) * multiple_of
        low = low - (padded - size) * spacing_mm / 2.0
        size = padded
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = low + spacing_mm / 2.0
    return affine, (int(size[0]), int(size[1]), int(size[2]))


def resample_to_grid(
    volume: Volume, *, affine: np.ndarray, shape: tuple[int, int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resample ``volume`` onto a grid in world space; outside its field of view is zero.

    Trilinear between axis-aligned grids runs separably (:mod:`engine.segmentation.resample`,
    the same values as MONAI ``SpatialResample``); other geometry and ``nearest`` through MONAI.
    """
    import torch

    from engine.segmentation.resample import resample_world

    data = torch.as_tensor(np.ascontiguousarray(volume.array, dtype=np.float32))[None]
    return resample_world(data, source_affine=volume.affine, target_affine=affine, shape=shape, mode=mode)[0]


def resample_study(
    volumes: Mapping[Sequence, Volume], *, channels: tuple[Sequence, ...], spacing_mm: float, multiple_of: int = 1
) -> tuple[torch.Tensor, np.ndarray, Sequence]:
    """(C, X, Y, Z) on the working grid (missing channels zero), its affine, the reference."""
    import torch

    ref_seq = choose_reference(volumes)
    affine, shape = working_grid(volumes[ref_seq], spacing_mm=spacing_mm, multiple_of=multiple_of)
    stack = torch.zeros((len(channels), *shape), dtype=torch.float32)
    for index, seq in enumerate(channels):
        if seq in volumes:
            stack[index] = resample_to_grid(volumes[seq], affine=affine, shape=shape)
    return stack, affine, ref_seq


def grid_multiple(divisible_by: int) -> int:
    """Working-grid sides are multiples of twice the network stride (see :func:`prepare_study`)."""
    return 2 * divisible_by


def prepare_study(
    volumes: Mapping[Sequence, Volume],
    *,
    channels: tuple[Sequence, ...],
    spacing_mm: float,
    divisible_by: int,
    align: bool = False,
) -> PreparedStudy:
    """Bring the study onto the working grid, crop the head and normalise (see module doc).

    Only the reference is resampled onto the whole working grid (it defines the head); the other
    sequences are resampled straight onto the head crop, which gives the same values as
    cropping their whole-grid resampling (the same world points are sampled) at a fraction of
    the cost.

    The network's output depends on where its input starts modulo its total stride
    (``divisible_by``). The working grid's sides are multiples of ``2 * divisible_by`` and the
    crop starts on the ``divisible_by`` lattice of that grid, so the crop sees the same phase as
    every window of a plain sliding window over the whole working grid (MONAI's windows start at
    multiples of the step or end at the grid's end; a smaller grid is padded equally on both
    sides) and the two agree up to the windows' edges.
    """
    import torch

    ref_seq = choose_reference(volumes)
    alignments: tuple = ()
    if align and len(volumes) > 1:
        from engine.segmentation.alignment import align_sequences

        volumes, alignments = align_sequences(volumes, reference=ref_seq)
    affine, shape = working_grid(volumes[ref_seq], spacing_mm=spacing_mm, multiple_of=grid_multiple(divisible_by))
    reference = resample_to_grid(volumes[ref_seq], affine=affine, shape=shape)
    head_full = head_mask_of(reference.numpy())
    if not head_full.any():
        msg = "The reference image is empty (no voxel above zero)"
        raise SegmentationError(msg, action="Check that the series holds image data.")
    box = head_box(head_full, margin=HEAD_MARGIN_VOX, lattice=divisible_by)
    crop_affine = _shifted(affine, [lo for lo, _ in box])
    crop_shape = tuple(hi - lo for lo, hi in box)
    region = tuple(slice(lo, min(hi, n)) for (lo, hi), n in zip(box, shape, strict=True))
    stack = torch.zeros((len(channels), *crop_shape), dtype=torch.float32)
    head = torch.zeros(crop_shape, dtype=torch.bool)
    inside = tuple(slice(0, r.stop - r.start) for r in region)
    head[inside] = torch.from_numpy(head_full[region])
    for index, seq in enumerate(channels):
        if seq is ref_seq:
            stack[index][inside] = reference[region]
        elif seq in volumes:
            stack[index] = resample_to_grid(volumes[seq], affine=crop_affine, shape=crop_shape)  # type: ignore[arg-type]
    return PreparedStudy(
        image=normalise_channels(stack, head),
        working_affine=crop_affine,
        head_mask=head.numpy(),
        reference=volumes[ref_seq],
        reference_sequence=ref_seq,
        missing=tuple(c for c in channels if c not in volumes),
        alignments=alignments,
    )


def _shifted(affine: np.ndarray, start: list[int]) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = start
    return np.asarray(affine, dtype=float) @ shift


def head_box(head: np.ndarray, *, margin: int, lattice: int) -> tuple[tuple[int, int], ...]:
    """(lo, hi) per axis: the head's bounding box plus ``margin``, widened to the ``lattice``
    (``lo`` a multiple of it, ``hi - lo`` too). ``hi`` may pass the grid's end (zero padding).

    >>> mask = np.zeros((40, 40, 40), bool); mask[10:21, 5:30, 18:19] = True
    >>> head_box(mask, margin=2, lattice=16)
    ((0, 32), (0, 32), (16, 32))
    """
    lo, hi = bounding_box(head, margin=margin)
    lo = (lo // lattice) * lattice
    hi = lo + (-(-(hi - lo) // lattice)) * lattice
    return tuple((int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def head_mask_of(reference: np.ndarray, *, workers: int | None = None) -> np.ndarray:
    """The head: the largest bright connected region of the lightly smoothed reference, holes filled.

    Smoothing first keeps background noise (Rician, a few % of the tissue signal) out. The hole
    filling runs on the region's bounding box (+1 voxel, so what touches the box's border is
    outside, exactly as on the whole grid), in every slice across each axis in turn: a head cut
    by the field of view is open in 3D but closed per slice. (A 3-D fill first, as before, changes
    nothing: a background component enclosed in 3D is enclosed in every slice through it, since
    an in-slice path to the slice's border would be a 3-D path to the box's border.)

    The Gaussian passes and the per-slice labellings run in ``workers`` threads (default: one per
    core; scipy releases the GIL), split so that the result is bit-identical to one thread.
    """
    from scipy import ndimage

    workers = workers_for(workers)
    if not np.any(reference > 0):
        return np.zeros(reference.shape, dtype=bool)
    smooth = gaussian_smooth(reference, sigma=1.0, workers=workers)
    positive = smooth[smooth > 0]  # a copy: the percentile may reorder it in place
    mask = smooth > HEAD_THRESHOLD_FRACTION * float(np.percentile(positive, 99, overwrite_input=True))
    del smooth, positive
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(sizes.argmax())
    del components
    if not mask.any():
        return mask
    lo, hi = bounding_box(mask, margin=1)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    sub = np.pad(mask[box], 1)
    for axis in range(3):
        sub = fill_holes(sub, plane_normal=axis, workers=workers)
    out = np.zeros(mask.shape, dtype=bool)
    out[box] = sub[1:-1, 1:-1, 1:-1]
    return out








def gaussian_smooth(array: np.ndarray, *, sigma: float, workers: int | None = None) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(array.astype(float32), sigma)``, bit-identical, in threads.

    Each 1-D pass along an axis is split into slabs across another axis: every output value of
    a pass depends only on its own line along the filtered axis, so the slabs are independent.
    """
    from scipy import ndimage

    workers = workers_for(workers)
    source = np.array(array, dtype=np.float32)  # a copy, as gaussian_filter's output
    if workers <= 1 or array.ndim != 3:
        return ndimage.gaussian_filter(source, sigma=sigma)
    target = np.empty_like(source)
    for axis in range(3):
        across = 2 if axis != 2 else 1

        def one(part: slice, axis: int = axis, across: int = across) -> None:
            index = tuple(part if a == across else slice(None) for a in range(3))
            ndimage.gaussian_filter1d(source[index], sigma, axis=axis, output=target[index])

        in_threads(one, slabs(source.shape[across], workers), workers)
        source, target = target, source
    return source


def fill_holes(mask: np.ndarray, *, plane_normal: int | None = None, workers: int = 1) -> np.ndarray:
    """``ndimage.binary_fill_holes`` in 3D, or in every slice across ``plane_normal`` at once.

    A hole is a background component (face connectivity, within the slice for the per-slice
    form) that does not reach the border (of the slice). One labelling of the background does
    what a loop of 2-D fills does, in one pass; the per-slice form runs in ``workers`` threads on
    slabs of slices (the slices are independent).

    >>> ring = np.zeros((1, 5, 5), bool); ring[0, 1:4, 1:4] = True; ring[0, 2, 2] = False
    >>> fill_holes(ring, plane_normal=0)[0, 2, 2], fill_holes(ring)[0, 2, 2]
    (np.True_, np.False_)
    """
    if plane_normal is None or workers <= 1:
        return _fill_holes(mask, plane_normal=plane_normal)
    out = np.empty_like(mask)

    def one(part: slice) -> None:
        index = tuple(part if a == plane_normal else slice(None) for a in range(3))
        out[index] = _fill_holes(mask[index], plane_normal=plane_normal)

    in_threads(one, slabs(mask.shape[plane_normal], workers), workers)
    return out


def _fill_holes(mask: np.ndarray, *, plane_normal: int | None) -> np.ndarray:
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 1)
    in_plane = [a for a in range(3) if a != plane_normal]
    if plane_normal is not None:
        index = [1, 1, 1]
        for offset in (0, 2):
            index[plane_normal] = offset
            structure[tuple(index)] = False
    components, count = ndimage.label(~mask, structure=structure)
    if count == 0:
        return mask.copy()
    border = np.zeros(count + 1, dtype=bool)
    for axis in in_plane:
        for end in (0, mask.shape[axis] - 1):
            border[np.unique(np.take(components, end, axis=axis))] = True
    border[0] = True  # label 0 is the mask itself
    return mask | ~border[components]


def normalise_channels(image: torch.Tensor, head: torch.Tensor, *, sample: torch.Tensor | None = None) -> torch.Tensor:
    """Z-score each channel with the statistics of its head voxels; zero outside the head.

    ``sample`` ((C, N) head voxels, e.g. of a whole case when ``image`` is a training patch of it)
    gives the statistics instead. All-zero (missing) channels stay zero.
    """
    import torch

    out = torch.zeros_like(image)
    head = head.bool()
    outside = ~head
    head_np = head.numpy()
    for index in range(image.shape[0]):
        channel = image[index]
        if sample is None:  # numpy's boolean gather: measured 8x faster than torch's here
            array = channel.numpy()
            values = torch.from_numpy(array[head_np & (array != 0)])
        else:
            values = sample[index][sample[index] != 0]
        if values.numel() < 2:
            continue
        std = float(values.std())
        target = out[index]  # in place: no full-size temporaries
        torch.sub(channel, float(values.mean()), out=target)
        target.div_(std if std > 0 else 1.0).masked_fill_(outside, 0.0)
    return out


def crop_to_head(
    stack: torch.Tensor,
    *,
    affine: np.ndarray,
    ref_channel: int,
    divisible_by: int,
    extra: torch.Tensor | None = None,
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Crop (C, X, Y, Z) to the head's bounding box (+ margin) on the ``divisible_by`` lattice
    (:func:`head_box`; zero padding where the box passes the grid's end).

    Returns the cropped stack (``extra`` channels, e.g. labels, appended after the image
    channels), the cropped grid's affine and the head mask on it.
    """
    import torch

    head = head_mask_of(stack[ref_channel].numpy())
    if not head.any():
        msg = "The reference image is empty (no voxel above zero)"
        raise SegmentationError(msg, action="Check that the series holds image data.")
    parts = [stack] + ([extra.float()] if extra is not None else []) + [torch.from_numpy(head)[None].float()]
    data = torch.cat(parts)
    box = head_box(head, margin=HEAD_MARGIN_VOX, lattice=divisible_by)
    region = tuple(slice(lo, min(hi, n)) for (lo, hi), n in zip(box, head.shape, strict=True))
    out = torch.zeros((data.shape[0], *(hi - lo for lo, hi in box)), dtype=data.dtype)
    out[(slice(None), *(slice(0, r.stop - r.start) for r in region))] = data[(slice(None), *region)]
    return out[:-1].contiguous(), _shifted(affine, [lo for lo, _ in box]), out[-1] > 0.5
