"""The shared benchmark harness: a benchmark's own Orthanc on free loopback ports.

Each benchmark that needs an archive starts the project's Orthanc under a temporary state dir
(:func:`orthanc_environ` + :func:`running_orthanc`), as the integration tests do
(``tests/support.py``), and stops it however the run ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine import orthanc_server
from engine.settings import Settings
from tests.support import free_port

__all__ = ["free_port", "orthanc_environ", "running_orthanc"]


def orthanc_environ(state_dir: Path, *, password: str, **env: str) -> dict[str, str]:
    """``GLIOWATCH_*`` variables for a benchmark: ``state_dir``, Orthanc on free HTTP and DICOM
    ports with ``password``; ``env`` (full variable names) adds or overrides values."""
    return {
        "GLIOWATCH_STATE_DIR": str(state_dir),
        "GLIOWATCH_ORTHANC__HTTP_PORT": str(free_port()),
        "GLIOWATCH_ORTHANC__DICOM_PORT": str(free_port()),
        "GLIOWATCH_ORTHANC__PASSWORD": password,
        **env,
    }


@contextmanager
def running_orthanc(settings: Settings) -> Iterator[orthanc_server.OrthancPaths]:
    """Orthanc started with ``settings`` (its password included), stopped on the way out."""
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    orthanc_server.start(settings.orthanc, paths, password=settings.orthanc.password)
    try:
        yield paths
    finally:
        orthanc_server.stop(paths)
