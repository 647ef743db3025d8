"""NIfTI-1 files for volumes (nibabel): the affine is stored as both sform and qform (scanner).

Writing never overwrites an existing file unless ``force=True``; the file is written under a
temporary name in the same folder and then moved into place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np

from engine.errors import DicomError, GlioWatchError
from engine.types import Volume

_SUFFIXES = (".nii.gz", ".nii")
_SCANNER_CODE = 1  # NIfTI xform code "scanner anatomical"


def write_nifti(volume: Volume, path: Path | str, *, force: bool = False) -> Path:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``) and return the path."""
    path = Path(path)
    if not path.name.endswith(_SUFFIXES):
        msg = f"Output file {path} must end with .nii or .nii.gz"
        raise GlioWatchError(msg, action="Choose a file name ending in .nii.gz.")
    if path.exists() and not force:
        msg = f"Output file {path} already exists; it was not overwritten"
        raise GlioWatchError(msg, action="Pass --force (force=True) to replace it.")
    if not path.parent.is_dir():
        msg = f"Output folder {path.parent} does not exist"
        raise GlioWatchError(msg, action="Create the folder first.")
    image = nib.Nifti1Image(np.asarray(volume.array), volume.affine)
    image.set_sform(volume.affine, code=_SCANNER_CODE)
    image.set_qform(volume.affine, code=_SCANNER_CODE)
    image.header.set_xyzt_units(xyz="mm")
    suffix = next(s for s in _SUFFIXES if path.name.endswith(s))
    temporary = path.with_name(f".{path.name[: -len(suffix)]}.{uuid.uuid4().hex}.tmp{suffix}")
    try:
        nib.save(image, temporary)
        if force:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # atomic: fails if someone created the file meanwhile
    except FileExistsError as exc:
        msg = f"Output file {path} already exists; it was not overwritten"
        raise GlioWatchError(msg, action="Pass --force (force=True) to replace it.") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_nifti(path: Path | str) -> Volume:
    """Read a NIfTI file into a :class:`Volume` (stored integer type kept when unscaled)."""
    path = Path(path)
    try:
        image = nib.load(path)
        array = np.asanyarray(image.dataobj)
    except FileNotFoundError as exc:
        msg = f"NIfTI file {path} does not exist"
        raise DicomError(msg) from exc
    except (nib.filebasedimages.ImageFileError, OSError, ValueError, EOFError) as exc:
        msg = f"NIfTI file {path} cannot be read"
        raise DicomError(msg, detail=f"{type(exc).__name__}: {exc}") from exc
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        msg = f"NIfTI file {path} holds a {array.ndim}D image of shape {array.shape}, not a volume"
        raise DicomError(msg)
    return Volume(array=array, affine=image.affine.copy(), metadata={"source": path.name})
