"""Harness of the reliability proofs (no tests here): the watcher as a real process, raw uploads.

The watcher runs as ``python -m flows.cli watch`` in its own session, so ``os.killpg`` reaches
the ephemeral Prefect server it starts as a child. Its stderr is read by a thread; its RSS (and
that of its process tree) is sampled with psutil. While it runs it holds the DuckDB file, so
progress is read from the snapshot it publishes after each cycle.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from engine.settings import Settings
from engine.store import open_store
from engine.errors import StoreError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Prefect home for every watcher process of the run: only the first pays the migrations."""
    return tmp_path_factory.mktemp("prefect-home")


def watcher_env(settings: Settings, prefect_home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "GLIOWATCH_STATE_DIR": str(settings.state_dir),
        "GLIOWATCH_ORTHANC__HTTP_PORT": str(settings.orthanc.http_port),
        "GLIOWATCH_ORTHANC__PASSWORD": settings.orthanc.password,
        "GLIOWATCH_PRIVACY__KEY_SALT": settings.privacy.key_salt,
        "GLIOWATCH_WATCHER__POLL_INTERVAL_S": "0.5",
        "GLIOWATCH_SEGMENTATION__ENABLED": "false",
        "GLIOWATCH_REGISTRATION__ENABLED": "false",
        "PREFECT_HOME": str(prefect_home),
        "PYTHONUNBUFFERED": "1",
        **extra,
    })
    return env


def gliowatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", *args]


@dataclass(slots=True)
class UploadOutcome:
    path: Path
    status: str  # "Success" | "AlreadyStored" | "refused"
    http_status: int
    detail: str = ""


def upload_raw(settings: Settings, path: Path, session: requests.Session | None = None) -> UploadOutcome:
    """POST one file to /instances and say what Orthanc did with it (refusals are outcomes)."""
    http = session or requests
    resp = http.post(f"{settings.orthanc.url}/instances", data=path.read_bytes(), timeout=60,
                     auth=(settings.orthanc.username, settings.orthanc.password))
    if resp.status_code == 200:
        return UploadOutcome(path, str(resp.json().get("Status", "Success")), 200)
    return UploadOutcome(path, "refused", resp.status_code, resp.text[:300])


class WatcherProcess:
    """``gliowatch watch`` (or ``serve``) as a subprocess: stderr collected, RSS sampled, killed by group."""

    def __init__(self, env: dict[str, str], *args: str, sample_s: float = 0.2, command: str = "watch") -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            gliowatch(command, *args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=PROJECT_ROOT, start_new_session=True)
        self.lines: list[str] = []
        self.peak_rss_bytes = 0  # the watcher process itself
        self.peak_tree_rss_bytes = 0  # the watcher and its children (the Prefect server)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._sampler = threading.Thread(target=self._sample, args=(sample_s,), daemon=True)
        self._reader.start()
        self._sampler.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _sample(self, every_s: float) -> None:
        try:
            root = psutil.Process(self.proc.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                own = root.memory_info().rss
                tree = own + sum(c.memory_info().rss for c in root.children(recursive=True))
            except psutil.Error:
                return
            self.peak_rss_bytes = max(self.peak_rss_bytes, own)
            self.peak_tree_rss_bytes = max(self.peak_tree_rss_bytes, tree)
            self._stop.wait(every_s)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, predicate: Callable[[], bool], *, timeout_s: float, what: str,
                 poll_s: float = 0.25) -> None:
        """Poll until ``predicate()``; fail with the watcher's output when it dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if not self.alive():
                pytest.fail(f"the watcher exited ({self.proc.returncode}) before {what}:\n{self.tail()}")
            time.sleep(poll_s)
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{self.tail()}")

    def kill(self) -> int | None:
        """SIGKILL the whole process group (watcher + Prefect server) and every descendant.

        A Prefect process worker starts each flow run in a session of its own, so the group
        kill alone would leave a running cycle behind, still holding the store for writing."""
        self._stop.set()
        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for child in descendants:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(descendants, timeout=30)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.proc.returncode

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])


def snapshot_count(settings: Settings, sql: str = "SELECT count(*) FROM studies") -> int:
    """A number from the published snapshot (0 before the first one)."""
    if not settings.snapshot_path.exists():
        return 0
    try:
        with open_store(settings.snapshot_path, read_only=True) as store:
            return int(store.query(sql)[0][0])
    except StoreError:  # replaced while we opened it: ask again next poll
        return 0


def processes_in_group(pgid: int, *, timeout_s: float = 15.0) -> list[str]:
    """Processes of a SIGKILLed group still alive after ``timeout_s`` (dying ones get that long)."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = []
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{p.pid}: {' '.join(p.info['cmdline'] or [])[:120]}")
            except (ProcessLookupError, psutil.Error):
                continue
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)

