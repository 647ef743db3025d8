"""The stored volumes image review shows: found through the store's path rule, put on one grid.

Which file a study shows comes from the snapshot (``engine.store.read_model.read_image_sources``): in baseline
space, a follow-up's native volumes (``StoredFile.VOLUME``) moved into the baseline's grid by its
registration matrix when shown (linear, as a registration toolkit resamples; cached), its labels as
the pipeline resampled them for the measurements (``StoredFile.REGISTERED``; stores written before
2026-12-07 also hold resampled images there, which are used as they are), and for the baseline
itself its native volumes and labels (``StoredFile.LABELS``); in native space, every study's
native volumes and labels. :meth:`engine.state_paths.StatePaths.resolve` turns each into
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
from engine.registration.reference import reference_sequence
from engine.settings import Settings
from engine.state_paths import StoredFile
from engine.types import Volume

Interpolation = Literal["linear", "nearest"]


@dataclass(frozen=True, slots=True)
class ImageSource:
    """One stored file: its kind (which says the folder it is relative to) and the stored path;
    with ``to_grid``, the file resampled (linear) onto that source's grid by ``matrix`` (moving
    RAS mm -> the grid's RAS mm): a native volume shown in its baseline's space."""

    kind: StoredFile
    path: str
    matrix: tuple[tuple[float, ...], ...] | None = None
    to_grid: ImageSource | None = None


def study_sources(row: pd.Series, *, baseline_space: bool, labels_path: str | None,
                  reference_sequence: str = "T1c") -> dict[str, ImageSource]:
    """``{sequence | 'labels': source}`` of one study (a row of ``read_image_sources``).

    In baseline space a follow-up's sequences are its native volumes moved onto the grid its
    registration aligned to: the baseline's native volume of ``reference_sequence`` (the
    ``registration.reference`` setting; T1c, else T1, as the pipeline chose it)."""
    if baseline_space and not row["is_reference"]:
        sources = {name: ImageSource(StoredFile.REGISTERED, path) for name, path in row["registered"].items()}
        reference_native = dict(row.get("reference_native") or {})
        grid_sequence = reference_sequence_of(reference_native, reference_sequence)
        if row.get("to_reference") is not None and grid_sequence is not None:
            grid = ImageSource(StoredFile.VOLUME, reference_native[grid_sequence])
            for seq, path in row["native"].items():
                sources.setdefault(seq, ImageSource(StoredFile.VOLUME, path, matrix=row["to_reference"], to_grid=grid))
        return sources
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


def reference_sequence_of(native: dict[str, str], preferred: str) -> str | None:
    """The sequence of ``native`` a registration aligns (engine.registration.reference)."""
    seq = reference_sequence(native, preferred)
    return None if seq is None else seq.value


@st.cache_resource(show_spinner=False, max_entries=24)
def _load(path: str, mtime_ns: int) -> Volume:  # mtime_ns: a rewritten file is read again
    return to_ras(read_nifti(path))


@st.cache_resource(show_spinner=False, max_entries=24)
def _load_moved(path: str, mtime_ns: int, grid_path: str, grid_mtime_ns: int,
                matrix: tuple[tuple[float, ...], ...]) -> Volume:
    return resample_to(reference=_load(grid_path, grid_mtime_ns), moving=_load(path, mtime_ns),
                       matrix=np.asarray(matrix, dtype=float), interpolation="linear")


def _key(settings: Settings, source: ImageSource) -> tuple:
    """What a source's volume depends on: its file (and version), and for a moved source the
    grid's file and the matrix."""
    path = stored_file(settings, source)
    if source.to_grid is None or source.matrix is None:
        return (str(path), path.stat().st_mtime_ns)
    grid = stored_file(settings, source.to_grid)
    return (str(path), path.stat().st_mtime_ns, str(grid), grid.stat().st_mtime_ns, source.matrix)


def _by_key(key: tuple) -> Volume:
    return _load(*key) if len(key) == 2 else _load_moved(*key)


def load_volume(settings: Settings, source: ImageSource) -> Volume:
    return _by_key(_key(settings, source))


def same_grid(a: Volume, b: Volume) -> bool:
    return a.array.shape == b.array.shape and bool(np.allclose(a.affine, b.affine, atol=1e-3))


def on_grid(volume: Volume, grid: Volume, *, interpolation: Interpolation) -> Volume:
    """``volume`` sampled on ``grid``'s voxels, both in one world (identity); itself when it is
    already there. Labels need ``"nearest"``."""
    if same_grid(volume, grid):
        return volume
    return resample_to(reference=grid, moving=volume, matrix=np.eye(4), interpolation=interpolation)


@st.cache_resource(show_spinner=False, max_entries=24)
def _load_on_grid(key: tuple, grid_key: tuple, interpolation: Interpolation) -> Volume:
    return on_grid(_by_key(key), _by_key(grid_key), interpolation=interpolation)


def load_on_grid(settings: Settings, source: ImageSource, grid: ImageSource, *,
                 interpolation: Interpolation) -> Volume:
    """A stored volume on the grid of another stored volume of the same world (cached)."""
    return _load_on_grid(_key(settings, source), _key(settings, grid), interpolation)
