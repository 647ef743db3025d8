"""Study volumes -> one normalised multi-channel tensor on the model's working grid.

Steps (MONAI transforms, torch imported inside the functions):

1. the reference (T1c, else T1) defines the output grid and the field of view;
2. a working grid axis-aligned in RAS world space at the model's spacing covers the reference's
   field of view, so a sagittal or oblique acquisition reaches the network in the orientation it
   was trained on;
3. every present sequence is resampled from its own grid onto the working grid in world space
   (``SpatialResample``: different planes, voxel sizes and positions are handled by the affines;
   no rigid registration is done here, the DICOM geometry is trusted);
4. a head crop (``CropForeground`` on the reference channel, padded to a multiple of the network
   stride);
5. per-channel z-score with the mean and standard deviation of the head voxels, zero outside
   the head (background noise of real scanners neither shifts the statistics nor reaches the
   network); a missing sequence stays an all-zero channel, as in training with modality dropout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import SegmentationError
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


def working_grid(reference: Volume, *, spacing_mm: float) -> tuple[np.ndarray, tuple[int, int, int]]:
    """An RAS-aligned grid at ``spacing_mm`` that covers the reference's field of view.

    >>> ref = Volume(np.zeros((10, 10, 4)), np.diag([1.0, 1.0, 5.0, 1.0]))
    >>> affine, shape = working_grid(ref, spacing_mm=2.0)
    >>> shape
    (5, 5, 10)
    """
    shape = np.array(reference.array.shape, dtype=float)
    corners = np.array(
        [[i, j, k, 1.0] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5) for k in (-0.5, shape[2] - 0.5)]
    )
    world = (reference.affine @ corners.T).T[:, :3]
    low, high = world.min(axis=0), world.max(axis=0)
    size = np.maximum(np.round((high - low) / spacing_mm).astype(int), 1)
    affine = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    affine[:3, 3] = low + spacing_mm / 2.0
    return affine, (int(size[0]), int(size[1]), int(size[2]))


def resample_to_grid(
    volume: Volume, *, affine: np.ndarray, shape: tuple[int, int, int], mode: str = "bilinear"
) -> torch.Tensor:
    """Resample ``volume`` onto a grid in world space; outside its field of view is zero."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    src = MetaTensor(
        torch.as_tensor(np.ascontiguousarray(volume.array, dtype=np.float32))[None],
        affine=torch.as_tensor(volume.affine, dtype=torch.float64),
    )
    out = SpatialResample(mode=mode, padding_mode="zeros")(
        src, dst_affine=torch.as_tensor(affine, dtype=torch.float64), spatial_size=shape
    )
    return out.as_tensor()[0].float()


def resample_study(
    volumes: Mapping[Sequence, Volume], *, channels: tuple[Sequence, ...], spacing_mm: float
) -> tuple[torch.Tensor, np.ndarray, Sequence]:
    """(C, X, Y, Z) on the working grid (missing channels zero), its affine, the reference."""
    import torch

    ref_seq = choose_reference(volumes)
    affine, shape = working_grid(volumes[ref_seq], spacing_mm=spacing_mm)
    stack = torch.zeros((len(channels), *shape), dtype=torch.float32)
    for index, seq in enumerate(channels):
        if seq in volumes:
            stack[index] = resample_to_grid(volumes[seq], affine=affine, shape=shape)
    return stack, affine, ref_seq


def prepare_study(
    volumes: Mapping[Sequence, Volume],
    *,
    channels: tuple[Sequence, ...],
    spacing_mm: float,
    divisible_by: int,
) -> PreparedStudy:
    """Bring the study onto the working grid, crop the head and normalise (see module doc)."""
    stack, affine, ref_seq = resample_study(volumes, channels=channels, spacing_mm=spacing_mm)
    ref_index = channels.index(ref_seq) if ref_seq in channels else 0
    cropped, cropped_affine, head = crop_to_head(
        stack, affine=affine, ref_channel=ref_index, divisible_by=divisible_by
    )
    return PreparedStudy(
        image=normalise_channels(cropped, head),
        working_affine=cropped_affine,
        head_mask=head.numpy(),
        reference=volumes[ref_seq],
        reference_sequence=ref_seq,
        missing=tuple(c for c in channels if c not in volumes),
    )


def head_mask_of(reference: np.ndarray) -> np.ndarray:
    """The head: the largest bright connected region of the lightly smoothed reference, holes filled.

    Smoothing first keeps background noise (Rician, a few % of the tissue signal) out.
    """
    from scipy import ndimage

    positive = reference[reference > 0]
    if positive.size == 0:
        return np.zeros(reference.shape, dtype=bool)
    smooth = ndimage.gaussian_filter(reference.astype(np.float32), sigma=1.0)
    mask = smooth > HEAD_THRESHOLD_FRACTION * float(np.percentile(smooth[smooth > 0], 99))
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        mask = components == int(sizes.argmax())
    mask = ndimage.binary_fill_holes(mask)
    for axis in range(3):  # a head cut by the field of view is open in 3D but closed per slice
        for index in range(mask.shape[axis]):
            plane = [slice(None)] * 3
            plane[axis] = index
            mask[tuple(plane)] = ndimage.binary_fill_holes(mask[tuple(plane)])
    return mask


def normalise_channels(image: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    """Z-score each channel with the statistics of its head voxels; zero outside the head.

    All-zero (missing) channels stay zero.
    """
    import torch

    out = torch.zeros_like(image)
    for index in range(image.shape[0]):
        channel = image[index]
        values = channel[head & (channel != 0)]
        if values.numel() < 2:
            continue
        std = float(values.std())
        out[index] = (channel - float(values.mean())) / (std if std > 0 else 1.0) * head
    return out


def crop_to_head(
    stack: torch.Tensor,
    *,
    affine: np.ndarray,
    ref_channel: int,
    divisible_by: int,
    extra: torch.Tensor | None = None,
) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Crop (C, X, Y, Z) to the head's bounding box (+ margin), padded to ``divisible_by``.

    Returns the cropped stack (``extra`` channels, e.g. labels, appended after the image
    channels), the cropped grid's affine and the head mask on it.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import CropForeground

    head = head_mask_of(stack[ref_channel].numpy())
    if not head.any():
        msg = "The reference image is empty (no voxel above zero)"
        raise SegmentationError(msg, action="Check that the series holds image data.")
    parts = [stack] + ([extra.float()] if extra is not None else []) + [torch.from_numpy(head)[None].float()]
    meta = MetaTensor(torch.cat(parts), affine=torch.as_tensor(affine, dtype=torch.float64))
    cropper = CropForeground(
        select_fn=lambda x: x[-1:] > 0.5,
        margin=HEAD_MARGIN_VOX,
        k_divisible=divisible_by,
        allow_smaller=False,
    )
    cropped = cropper(meta)
    data = cropped.as_tensor()
    return data[:-1].contiguous(), np.asarray(cropped.affine, dtype=float), data[-1] > 0.5
