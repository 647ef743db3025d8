"""The one rule for stored file paths: relative to the folder of their kind, never out of it."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

from engine import state_paths
from engine.errors import StoreError
from engine.settings import Settings
from engine.state_paths import StatePaths, StoredFile


def test_each_kind_has_its_folder_under_the_state_dir(tmp_path: Path) -> None:
    paths = Settings(state_dir=tmp_path).state_paths
    assert paths == StatePaths(tmp_path / "volumes", tmp_path / "labels", tmp_path / "registered")
    assert Settings(state_dir=tmp_path).volumes_dir == paths.folder(StoredFile.VOLUME)
    assert paths.resolve(StoredFile.LABELS, "P-1/1.2/labels.nii.gz") == tmp_path / "labels/P-1/1.2/labels.nii.gz"
    assert paths.resolve(StoredFile.REGISTERED, "P-1/1.2/T1c.nii.gz") == tmp_path / "registered/P-1/1.2/T1c.nii.gz"


def test_stored_is_the_inverse_of_resolve(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    for kind in StoredFile:
        target = paths.resolve(kind, "P-1/1.2/x.nii.gz")
        assert paths.stored(kind, target) == "P-1/1.2/x.nii.gz"
        assert paths.resolve(kind, paths.stored(kind, target)) == target


@pytest.mark.parametrize("stored", ["../users.toml", "P-1/../../secrets/key", "/etc/passwd"])
def test_a_path_leaving_its_folder_is_refused(tmp_path: Path, stored: str) -> None:
    paths = StatePaths.under(tmp_path)
    (tmp_path / "users.toml").write_text("x")
    with pytest.raises(StoreError, match=r"The stored registered path .* is outside .*registered; it is not read"):
        paths.resolve(StoredFile.REGISTERED, stored)


def test_a_link_out_of_the_folder_is_refused_and_an_absolute_path_inside_accepted(tmp_path: Path) -> None:
    paths = StatePaths.under(tmp_path)
    paths.volumes_dir.mkdir()
    (tmp_path / "outside.nii.gz").write_text("x")
    (paths.volumes_dir / "link.nii.gz").symlink_to(tmp_path / "outside.nii.gz")
    with pytest.raises(StoreError, match="is outside"):
        paths.resolve(StoredFile.VOLUME, "link.nii.gz")
    inside = paths.volumes_dir / "P-1" / "T1c.nii.gz"
    assert paths.resolve(StoredFile.VOLUME, str(inside)) == inside


def test_an_empty_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="An empty labels path is stored"):
        StatePaths.under(tmp_path).resolve(StoredFile.LABELS, " ")


def test_doctests() -> None:
    failures, tried = doctest.testmod(state_paths, raise_on_error=False, verbose=False)[:2]
    assert tried >= 2 and failures == 0
