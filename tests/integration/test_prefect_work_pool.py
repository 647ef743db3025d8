"""`gliowatch serve --work-pool` against a real Prefect server: a deployment on a process work
pool whose scheduled runs (one cycle each, in fresh processes started by the worker) ingest what
arrives in the real Orthanc, once, with the secrets kept out of Prefect's database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from engine.settings import Settings
from engine.store import open_store
from tests.dicom_factory import write_study
from tests.integration.test_reliability_harness import (
    PROJECT_ROOT,
    WatcherProcess,
    prefect_home,  # noqa: F401 - fixture
    snapshot_count,
    upload_raw,
    watcher_env,
)
from tests.support import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on a free loopback port with its own home; yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2", "DO_NOT_TRACK": "1"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Prefect server did not start:\n{(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _api(url: str, path: str, body: dict | None = None) -> list | dict:
    resp = requests.post(f"{url}{path}", json=body or {}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def test_serve_on_a_work_pool_runs_scheduled_cycles_that_ingest_each_study_once(
    settings: Settings, archive, prefect_server: str, prefect_home: Path, tmp_path: Path,  # noqa: ANN001, F811
) -> None:
    uids = []
    for i in range(2):
        uid, files = write_study(tmp_path / f"s{i}", patient_id=f"MRN-WP{i}", sequences=("T1c", "FLAIR"),
                                 study_date=date(2024, 3, 1 + i), shape=(16, 16, 4), seed=i)
        uids.append(uid)
        assert all(upload_raw(settings, f).status == "Success" for f in files)
    env = watcher_env(settings, prefect_home, PREFECT_API_URL=prefect_server,
                      GLIOWATCH_WATCHER__POLL_INTERVAL_S="3", PREFECT_WORKER_QUERY_SECONDS="1",
                      PREFECT_WORKER_PREFETCH_SECONDS="5")
    service = WatcherProcess(env, "--work-pool", "gliowatch-test", command="serve")
    try:
        service.wait_for(lambda: snapshot_count(settings) >= 2, timeout_s=300,
                         what="both studies in the snapshot, written by scheduled runs", poll_s=1.0)
        deployments = _api(prefect_server, "/deployments/filter", {"deployments": {"name": {"any_": ["gliowatch-stream"]}}})
        assert len(deployments) == 1
        deployment = deployments[0]
        time.sleep(8)  # more scheduled cycles: they find nothing new and ingest nothing twice
        runs = _api(prefect_server, "/flow_runs/filter",
                    {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}, "limit": 200})
    finally:
        service.kill()
    states = [r["state_type"] for r in runs]
    assert "COMPLETED" in states, states
    assert "FAILED" not in states and "CRASHED" not in states, states
    running = [r for r in runs if r["state_type"] == "RUNNING"]
    assert len(running) <= 1, "two cycles ran at once on the single-writer store"
    assert deployment["concurrency_limit"] == 1 or (deployment.get("global_concurrency_limit") or {}).get("limit") == 1
    assert deployment["work_pool_name"] == "gliowatch-test"
    stored = json.dumps(deployment)
    assert settings.orthanc.password not in stored and settings.privacy.key_salt not in stored
    with open_store(settings.db_path, read_only=True) as store:
        rows = store.query_dicts("SELECT study_uid, revision FROM studies")
    assert sorted(r["study_uid"] for r in rows) == sorted(uids)
    assert all(r["revision"] == 1 for r in rows)


def test_work_pool_without_a_prefect_server_is_refused_with_a_reason(settings: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"GLIOWATCH_STATE_DIR": str(settings.state_dir), "PREFECT_HOME": str(tmp_path / "ph")})
    out = subprocess.run([sys.executable, "-m", "flows.cli", "serve", "--work-pool", "x"], env=env,  # noqa: S603
                         capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode != 0
    assert "PREFECT_API_URL" in out.stdout + out.stderr
