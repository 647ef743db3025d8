"""The stored volumes image review shows: found through the store's path rule, put on one grid.

Which file a study shows comes from the snapshot (``engine.store.read_model.read_image_sources``): in baseline
space, a follow-up's resampled files (``StoredFile.REGISTERED``) and, for the baseline itself, its
native volumes (``StoredFile.VOLUME``) and labels (``StoredFile.LABELS``); in native space, every
study's native volumes and labels. :meth:`engine.state_paths.StatePaths.resolve` turns each into
a file, so a row can never make the dashboard read a file outside the state dir.

Files of one world on different grids (a baseline's FLAIR beside its T1c, labels on the T1c grid
shown over the T2) are resampled onto the grid shown, without moving them (identity transform):
that is what "baseline space" means for the baseline's own files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.slices import to_ras
from engine.dicom.nifti import read_nifti
from engine.registration import resample_to
from engine.settings import Settings
from engine.state_paths import StoredFile
from engine.types import Volume

Interpolation = Literal["linear", "nearest"]


@dataclass(frozen=True, slots=True)
class ImageSource:
    """One stored file: its kind (which says the folder it is relative to) and the stored path."""

    kind: StoredFile
    path: str


def study_sources(row: pd.Series, *, baseline_space: bool, labels_path: str | None) -> dict[str, ImageSource]:
    """``{sequence | 'labels': source}`` of one study (a row of ``read_image_sources``)."""
    if baseline_space and not row["is_reference"]:
        return {name: ImageSource(StoredFile.REGISTERED, path) for name, path in row["registered"].items()}
    sources = {seq: ImageSource(StoredFile.VOLUME, path) for seq, path in row["native"].items()}
    if labels_path:
        sources["labels"] = ImageSource(StoredFile.LABELS, labels_path)
    return sources


def stored_file(settings: Settings, source: ImageSource) -> Path:
    """The file of a source; refused outside its folder (StoreError), an error when missing."""
    path = settings.state_paths.resolve(source.kind, source.path)
    if not path.is_file():
        folder = settings.state_paths.folder(source.kind)
        msg = f"The stored {source.kind.value} file {source.path} does not exist under {folder}"
        raise FileNotFoundError(msg)
    return path


@st.cache_resource(show_spinner=False, max_entries=24)
def _load(path: str, mtime_ns: int) -> Volume:  # mtime_ns: a rewritten file is read again
    return to_ras(read_nifti(path))


def load_volume(settings: Settings, source: ImageSource) -> Volume:
    path = stored_file(settings, source)
    return _load(str(path), path.stat().st_mtime_ns)


def same_grid(a: Volume, b: Volume) -> bool:
    return a.array.shape == b.array.shape and bool(np.allclose(a.affine, b.affine, atol=1e-3))


def on_grid(volume: Volume, grid: Volume, *, interpolation: Interpolation) -> Volume:
    """``volume`` sampled on ``grid``'s voxels, both in one world (identity); itself when it is
    already there. Labels need ``"nearest"``."""
    if same_grid(volume, grid):
        return volume
    return resample_to(reference=grid, moving=volume, matrix=np.eye(4), interpolation=interpolation)


@st.cache_resource(show_spinner=False, max_entries=24)
def _load_on_grid(path: str, mtime_ns: int, grid_path: str, grid_mtime_ns: int,
                  interpolation: Interpolation) -> Volume:
    return on_grid(_load(path, mtime_ns), _load(grid_path, grid_mtime_ns), interpolation=interpolation)


def load_on_grid(settings: Settings, source: ImageSource, grid: ImageSource, *,
                 interpolation: Interpolation) -> Volume:
    """A stored volume on the grid of another stored volume of the same world (cached)."""
    path, grid_path = stored_file(settings, source), stored_file(settings, grid)
    return _load_on_grid(str(path), path.stat().st_mtime_ns, str(grid_path), grid_path.stat().st_mtime_ns,
                         interpolation)
