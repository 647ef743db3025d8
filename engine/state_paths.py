"""Where the files the store points at live: one rule for the writers and the readers.

The store keeps every file path relative to the folder of its kind under the state dir, never
absolute (a state dir can be moved, or mounted elsewhere on a worker):

- ``VOLUME``: ``volumes.path`` (ingestion), relative to ``<state>/volumes``;
- ``LABELS``: ``segmentations.labels_path`` (segmentation), relative to ``<state>/labels``;
- ``REGISTERED``: the values of ``registrations.resampled`` (a follow-up's labels resampled into
  its baseline's grid; in stores written before 2026-12-07 its images too), relative to
  ``<state>/registered``.

:meth:`StatePaths.resolve` is the only way from a stored path to a file, and it refuses a path
that leaves its folder (``..``, an absolute path elsewhere, a link out): a reader such as the
dashboard must never be made to open an arbitrary file through a row of the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from engine.errors import StoreError


class StoredFile(StrEnum):
    """The kind of a file path kept in the store, which says the folder it is relative to."""

    VOLUME = "volume"
    LABELS = "labels"
    REGISTERED = "registered"


@dataclass(frozen=True, slots=True)
class StatePaths:
    """The three folders of stored files (``StatePaths.under(state_dir)`` in production)."""

    volumes_dir: Path
    labels_dir: Path
    registered_dir: Path

    @classmethod
    def under(cls, state_dir: Path) -> StatePaths:
        """The layout of one state dir.

        >>> StatePaths.under(Path("/srv/state")).registered_dir.as_posix()
        '/srv/state/registered'
        """
        root = Path(state_dir)
        return cls(volumes_dir=root / "volumes", labels_dir=root / "labels", registered_dir=root / "registered")

    def folder(self, kind: StoredFile) -> Path:
        return {StoredFile.VOLUME: self.volumes_dir, StoredFile.LABELS: self.labels_dir,
                StoredFile.REGISTERED: self.registered_dir}[StoredFile(kind)]

    def resolve(self, kind: StoredFile, stored_path: str | Path) -> Path:
        """The file of a stored path of ``kind``; refused when it is empty or leaves its folder."""
        folder = self.folder(kind)
        if not str(stored_path).strip():
            raise StoreError(f"An empty {StoredFile(kind).value} path is stored",
                             action="Reprocess the study; the store row is incomplete.")
        path = folder / stored_path
        if not path.resolve().is_relative_to(folder.resolve()):
            raise StoreError(
                f"The stored {StoredFile(kind).value} path {stored_path} is outside {folder}; it is not read",
                action="Stored paths are relative to their folder under the state dir. Check the store row "
                       "and the GLIOWATCH_STATE_DIR setting.")
        return path

    def stored(self, kind: StoredFile, path: Path) -> str:
        """What the store keeps for a file of ``kind`` written at ``path`` (the inverse of resolve).

        >>> paths = StatePaths.under(Path("/s"))
        >>> paths.stored(StoredFile.REGISTERED, Path("/s/registered/P-1/1.2/T1c.nii.gz"))
        'P-1/1.2/T1c.nii.gz'
        """
        return Path(path).relative_to(self.folder(kind)).as_posix()
