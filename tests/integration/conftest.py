"""The real Orthanc: started once per test run on free ports, wiped between tests."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import orthanc_server
from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings, load_settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(state_dir: Path, http_port: int, **env: str) -> Settings:
    environ = {
        "GLIOWATCH_STATE_DIR": str(state_dir),
        "GLIOWATCH_ORTHANC__HTTP_PORT": str(http_port),
        "GLIOWATCH_ORTHANC__DICOM_PORT": str(free_port()),
        "GLIOWATCH_ORTHANC__STABLE_AGE_S": "1",
        "GLIOWATCH_ORTHANC__PASSWORD": "test-password",
        "GLIOWATCH_WATCHER__POLL_INTERVAL_S": "0.5",
        "GLIOWATCH_PRIVACY__KEY_SALT": "test-salt",
        **env,
    }
    return load_settings(environ=environ)


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
