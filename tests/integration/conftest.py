"""The real Orthanc: started once per test run on free ports, wiped between tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import orthanc_server
from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from tests.support import free_port, make_settings


@pytest.fixture(scope="session")
def orthanc_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    if shutil.which("Orthanc") is None:
        pytest.fail("Orthanc is not installed: run `make install` (Debian package 'orthanc')")
    state = tmp_path_factory.mktemp("orthanc-state")
    settings = make_settings(state, free_port())
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    orthanc_server.start(settings.orthanc, paths, password=settings.orthanc.password)
    yield settings
    orthanc_server.stop(paths)


@pytest.fixture
def archive(orthanc_settings: Settings) -> OrthancArchive:
    """The real Orthanc, emptied before the test."""
    arch = OrthancArchive(orthanc_settings.orthanc.url, username=orthanc_settings.orthanc.username,
                          password=orthanc_settings.orthanc.password)
    arch.delete_everything()
    return arch


@pytest.fixture
def settings(orthanc_settings: Settings, tmp_path: Path) -> Settings:
    """Settings for one test: the shared Orthanc, a fresh state dir (store, volumes)."""
    return make_settings(tmp_path / "state", orthanc_settings.orthanc.http_port)
