"""A volume in the closest RAS+ voxel order (pure: axes permuted and flipped, no resampling)."""

from __future__ import annotations

import nibabel.orientations as ornt
import numpy as np

from engine.types import Volume


def to_ras(volume: Volume) -> Volume:
    """The same image with its voxel axes permuted/flipped to the closest RAS+ order.

    >>> flipped = Volume(np.arange(3.0)[:, None, None], np.diag([-1.0, 1, 1, 1]))
    >>> to_ras(flipped).array[:, 0, 0].tolist()
    [2.0, 1.0, 0.0]
    """
    current = ornt.io_orientation(volume.affine)
    target = ornt.axcodes2ornt(("R", "A", "S"))
    transform = ornt.ornt_transform(current, target)
    array = ornt.apply_orientation(np.asarray(volume.array), transform)
    affine = volume.affine @ ornt.inv_ornt_aff(transform, volume.array.shape)
    return Volume(array=np.ascontiguousarray(array), affine=affine, metadata=dict(volume.metadata))
