"""The shared test harness: small helpers more than one test module needs.

Fixtures stay in ``conftest.py`` files (``tests/integration/conftest.py`` starts the real
Orthanc; ``tests/integration/test_reliability_harness.py`` runs a real watcher process); what is
here are plain functions those fixtures and tests call.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.settings import Settings, load_settings


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (pynetdicom's ``get_port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(state_dir: Path, http_port: int, **env: str) -> Settings:
    """Settings for a test on the real Orthanc at ``http_port``: a state dir, a free DICOM port,
    a 1 s stable age, a test password and key salt; ``env`` adds or overrides GLIOWATCH_* values."""
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


def wait_until_healthy(url: str, proc: subprocess.Popen, log: Path, *, what: str, timeout_s: float) -> None:
    """Poll a Streamlit server's ``{url}/_stcore/health`` until it answers 200, with a deadline;
    fail the test with the end of its log when it exits or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            try:
                proc.wait(timeout=0.2)  # poll interval; returns early only if the server died
            except subprocess.TimeoutExpired:
                pass
    pytest.fail(f"{what} was not healthy after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty is not needed: 0.0 then)."""
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def file_identity(path: Path) -> tuple[int, int]:
    """What a reader's cache key and the file system see of a file (a snapshot): inode and mtime."""
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns)


def write_reliability_summary(artifacts_dir: Path, name: str, summary: Mapping[str, Any], *,
                              printed_without: tuple[str, ...] = ()) -> None:
    """Write a reliability test's summary to ``test-artifacts/reliability/<name>`` and print it
    (less the keys in ``printed_without``)."""
    out = artifacts_dir / "reliability"
    out.mkdir(exist_ok=True)
    (out / name).write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k not in printed_without}, indent=2))
