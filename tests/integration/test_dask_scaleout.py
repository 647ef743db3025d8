"""Scale-out: segmentation and registration on a real local Dask cluster of 2 worker processes,
while the flow process stays the only DuckDB writer; same results as the default thread runner."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import types
from pathlib import Path

import pytest

from engine.archive.folder import FolderArchive
from engine.ingest import ingest_study
from engine.settings import Settings
from engine.store import open_store
from engine.usecases.follow_archive import run_cycle
from engine.modelling.synth import generate_cohort
from flows.prefect_env import configure_prefect
from tests.support import make_settings

pytestmark = pytest.mark.integration


def _ingest(settings: Settings, cohort: Path) -> None:
    from flows.runtime import build_runtime

    rt = build_runtime(settings, archive=FolderArchive(cohort))
    try:
        run_cycle(archive=rt.archive, store=rt.store,
                  ingest=lambda sid: ingest_study(rt.archive, sid, rules=rt.rules, volumes_dir=rt.volumes_dir,
                                                  key_salt=rt.key_salt))
    finally:
        rt.close()


def _process(settings: Settings, cohort: Path) -> dict:
    from flows.process import run_processing
    from flows.runtime import build_runtime

    rt = build_runtime(settings, archive=FolderArchive(cohort))
    try:
        uids = [r[0] for r in rt.store.query("SELECT study_uid FROM studies ORDER BY study_date")]
        run_processing(rt, uids)
        seg = {r["study_uid"]: (r["et_ml"], r["snfh_ml"], r["netc_ml"], r["rc_ml"])
               for r in rt.store.query_dicts("SELECT * FROM segmentations WHERE NOT superseded")}
        reg = {(r["study_uid"], r["kind"]): json.loads(r["matrix"])
               for r in rt.store.query_dicts("SELECT * FROM registrations WHERE NOT superseded")}
        status = dict(rt.store.query("SELECT study_uid, status FROM studies"))
    finally:
        rt.close()
    return {"seg": seg, "reg": reg, "status": status}


def test_dask_cluster_of_two_workers_gives_the_same_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed")
    # Worker processes are spawned and re-import the parent's __main__; Streamlit's AppTest (run
    # earlier in the same session) leaves a dashboard page there, which must not run in a worker.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    cohort = tmp_path / "cohort"
    generate_cohort(n_patients=2, seed=3, out_dir=cohort, size="test", n_visits=3)
    threads = make_settings(tmp_path / "threads", 1)
    configure_prefect(threads)
    _ingest(threads, cohort)
    shutil.copytree(threads.state_dir, tmp_path / "dask", ignore=shutil.ignore_patterns("prefect", "*.wal"))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as cluster, \
            distributed.Client(cluster) as client:
        address = cluster.scheduler_address.removeprefix("tcp://")
        on_dask = dataclasses.replace(make_settings(tmp_path / "dask", 1), task_runner=f"dask://{address}")
        with distributed.get_task_stream(client) as stream:
            dask_result = _process(on_dask, cohort)
        workers = {t["worker"] for t in stream.data}
    thread_result = _process(threads, cohort)
    assert len(workers) == 2, f"work was not spread over both workers: {workers}"
    assert dask_result["status"] == thread_result["status"]
    assert set(dask_result["status"].values()) == {"ASSESSED"}
    assert dask_result["seg"].keys() == thread_result["seg"].keys() and len(dask_result["seg"]) == 6
    for uid, volumes in thread_result["seg"].items():
        assert dask_result["seg"][uid] == pytest.approx(volumes, abs=1e-6)
    assert dask_result["reg"].keys() == thread_result["reg"].keys()
    for key, matrix in thread_result["reg"].items():
        flat = [v for row in matrix for v in row]
        assert [v for row in dask_result["reg"][key] for v in row] == pytest.approx(flat, abs=1e-3)
    with open_store(tmp_path / "dask" / "gliowatch.duckdb", read_only=True) as store:
        assert store.query("SELECT count(*) FROM timeline")[0][0] >= 4
