"""Studies/hour of the ingestion stream for small studies, against a plain sequential loop.

Both read the same studies from a real Orthanc on loopback (started here on a free port).

- **stream** (ours): ``engine.usecases.follow_archive.run_cycle`` from cursor 0 into a fresh DuckDB file, with
  ``engine.ingest.ingest_study`` (4 download threads per series, series classification, geometry
  checks, NIfTI written under a state dir, one transaction per study with the cursor).
- **baseline**: a plain loop over Orthanc's study list that downloads every instance one by one,
  parses it with pydicom and assembles each series with ``assemble_volume``; no classification,
  no NIfTI, no DuckDB, no cursor.

Each is run ``REPEATS`` times, alternating; the best and the median are printed with the ratio.
Run: ``python -m benchmarks.bench_stream``. Prefect is not involved (its start-up, ~10-30 s per
process, is measured by the burst proof in docs/RELIABILITY.md instead).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from benchmarks.harness import orthanc_environ, running_orthanc
from engine.archive.orthanc import OrthancArchive
from engine.dicom.reader import datasets_from_bytes
from engine.dicom.volume import assemble_volume
from engine.ingest import ingest_study
from engine.series_rules import load_series_rules
from engine.settings import load_settings
from engine.store import open_store
from engine.usecases.follow_archive import run_cycle
from tests.dicom_factory import write_study

N_STUDIES = 20
SHAPE = (32, 32, 16)  # 4 series x 16 slices of 32x32 per study
REPEATS = 3


def _wait_stable(archive: OrthancArchive, n: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stable = {c.resource_id for c in archive.changes(since=0, limit=100000).changes
                  if c.change_type == "StableStudy"}
        if len(stable) >= n:
            return
        time.sleep(0.2)
    msg = f"Orthanc did not report {n} stable studies within {timeout_s} s"
    raise TimeoutError(msg)


def _baseline(archive: OrthancArchive) -> int:
    volumes = 0
    for study_id in archive.list_studies():
        for series_id in archive.study(study_id).series_ids:
            blobs = [archive.fetch_instance(i) for i in archive.series(series_id).instance_ids]
            assemble_volume(datasets_from_bytes(blobs))
            volumes += 1
    return volumes


def _stream(archive: OrthancArchive, settings, root: Path, run: int) -> int:  # noqa: ANN001
    rules = load_series_rules(settings.series_rules)
    volumes_dir = root / f"volumes-{run}"
    with open_store(root / f"stream-{run}.duckdb") as store:
        report = run_cycle(
            archive=archive, store=store,
            ingest=lambda sid: ingest_study(archive, sid, rules=rules, volumes_dir=volumes_dir,
                                            key_salt="bench"),
        )
        if len(report.ingested) != N_STUDIES:
            msg = f"the stream ingested {len(report.ingested)} of {N_STUDIES} studies: {report.summary()}"
            raise RuntimeError(msg)
        return int(store.query("SELECT count(*) FROM volumes")[0][0])


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(environ=orthanc_environ(root / "state", password="bench",
                                                         GLIOWATCH_ORTHANC__STABLE_AGE_S="1"))
        with running_orthanc(settings):
            archive = OrthancArchive(settings.orthanc.url, username="gliowatch", password="bench")
            n_inst = 0
            for i in range(N_STUDIES):
                _, files = write_study(root / "dicom" / f"s{i}", patient_id=f"MRN-{i % 5}", shape=SHAPE,
                                       study_date=date(2024, 1, 1) + timedelta(days=i), seed=i)
                for f in files:
                    archive.upload_file(f)
                n_inst += len(files)
            _wait_stable(archive, N_STUDIES)
            _baseline(archive)  # warm-up: imports, connection pool, Orthanc's caches
            base, ours = [], []
            for run in range(REPEATS):
                t0 = time.perf_counter()
                n_base = _baseline(archive)
                base.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                n_ours = _stream(archive, settings, root, run)
                ours.append(time.perf_counter() - t0)
                if n_base != n_ours or n_ours != 4 * N_STUDIES:
                    msg = f"volume counts differ: baseline {n_base}, stream {n_ours}"
                    raise RuntimeError(msg)
    b_best, o_best = min(base), min(ours)
    per_hour = 3600 * N_STUDIES
    print(f"{N_STUDIES} studies x 4 series x {SHAPE[2]} slices of {SHAPE[0]}x{SHAPE[1]} "
          f"({n_inst} instances), best of {REPEATS} (median in brackets)")
    print(f"baseline sequential download+assemble, no store: {b_best:6.2f} s "
          f"({statistics.median(base):.2f})  {per_hour / b_best:8.0f} studies/hour")
    print(f"stream run_cycle (classify, NIfTI, DuckDB+cursor): {o_best:6.2f} s "
          f"({statistics.median(ours):.2f})  {per_hour / o_best:8.0f} studies/hour")
    print(f"ratio stream/baseline throughput: {b_best / o_best:.2f}x  (>1 = the stream is faster)")
    return {"baseline_s": b_best, "stream_s": o_best, "studies": N_STUDIES, "instances": n_inst}


if __name__ == "__main__":
    main()
