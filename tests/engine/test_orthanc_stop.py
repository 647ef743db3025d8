"""``orthanc_server.stop`` from a process that is not Orthanc's parent.

``gliowatch demo`` starts Orthanc as its child and then serves the dashboard; ``gliowatch orthanc
stop`` from another shell signals it. The exited Orthanc stays a zombie until the demo reaps it,
and a zombie still answers ``kill(pid, 0)``: stop must count it as exited, not wait forever.
No Orthanc is needed: a ``sleep`` child of a parent that never reaps plays its part.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine import orthanc_server

PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '300'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(120)\n"  # never waits for the child
)


@pytest.fixture
def unreaped_child():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        yield int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait()


def test_stop_returns_when_the_process_exits_but_is_not_reaped(tmp_path: Path, unreaped_child: int) -> None:
    paths = orthanc_server.OrthancPaths(tmp_path)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pidfile.write_text(str(unreaped_child))
    result: list[bool] = []
    worker = threading.Thread(target=lambda: result.append(orthanc_server.stop(paths, timeout_s=5.0)), daemon=True)
    worker.start()
    worker.join(timeout=60.0)  # liveness, not speed: before the fix this never returned
    assert not worker.is_alive(), "stop() still waiting for a process that has exited"
    assert result == [True]
    assert not paths.pidfile.exists()
    assert orthanc_server._proc_state(unreaped_child) == "Z"  # exited, still unreaped: the case under test


def test_a_zombie_pidfile_does_not_count_as_running(tmp_path: Path, unreaped_child: int) -> None:
    paths = orthanc_server.OrthancPaths(tmp_path)
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.pidfile.write_text(str(unreaped_child))
    assert orthanc_server._read_pid(paths) == unreaped_child
    subprocess.run(["kill", str(unreaped_child)], check=True)
    for _ in range(200):
        if orthanc_server._proc_state(unreaped_child) == "Z":
            break
        threading.Event().wait(0.05)
    assert orthanc_server._read_pid(paths) is None


def test_proc_state_of_a_missing_and_a_running_process() -> None:
    assert orthanc_server._proc_state(1 << 30) is None  # no such process
    import os

    assert orthanc_server._proc_state(os.getpid()) in {"R", "S"}
