"""Fetch + decode + assemble one 4-series study from Orthanc, against SimpleITK's ImageSeriesReader.

Baseline: ``SimpleITK.ImageSeriesReader`` on the same DICOM files read from local disk (no network).
Ours is timed twice: the full path the watcher runs (per-instance HTTP download from a real Orthanc
on loopback + pydicom decode + geometry checks + stacking) and the decode+assemble part alone from
the same local files, so the ratio against the baseline compares like with like.
Run: ``python -m benchmarks.bench_ingest`` (starts its own Orthanc on a free port).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import SimpleITK as sitk

from benchmarks.harness import orthanc_environ, running_orthanc
from engine.archive.orthanc import OrthancArchive
from engine.dicom.reader import datasets_from_bytes, load_dataset_files
from engine.dicom.volume import assemble_volume
from engine.settings import load_settings
from engine.modelling.synth import generate_cohort

REPEATS = 5


def _best(fn, repeats: int = REPEATS) -> tuple[float, float]:  # noqa: ANN001
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = json.loads(generate_cohort(n_patients=1, seed=11, out_dir=root / "cohort", size="demo",
                                              n_visits=3).read_text())
        visit = manifest["patients"][0]["visits"][0]
        series_dirs = [root / "cohort" / s["dir"] for s in visit["series"]]
        files = {d: sorted(d.glob("*.dcm")) for d in series_dirs}
        n_inst = sum(len(v) for v in files.values())
        settings = load_settings(environ=orthanc_environ(root / "state", password="bench"))
        with running_orthanc(settings):
            archive = OrthancArchive(settings.orthanc.url, username="gliowatch", password="bench")
            for fs in files.values():
                for f in fs:
                    archive.upload_file(f)
            study_id = archive.list_studies()[0]
            info = archive.study(study_id)
            series = [archive.series(s) for s in info.series_ids]

            def ours_full() -> None:
                for s in series:
                    with ThreadPoolExecutor(max_workers=4) as pool:
                        blobs = list(pool.map(archive.fetch_instance, s.instance_ids))
                    assemble_volume(datasets_from_bytes(blobs))

            def ours_local() -> None:
                for fs in files.values():
                    assemble_volume(load_dataset_files(fs))

            def baseline() -> None:
                for d in series_dirs:
                    reader = sitk.ImageSeriesReader()
                    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(d)))
                    sitk.GetArrayFromImage(reader.Execute())

            ours_full()  # warm-up (imports, connection pool)
            t_full, m_full = _best(ours_full)
            t_local, m_local = _best(ours_local)
            t_base, m_base = _best(baseline)
    print(f"study: 4 series, {n_inst} instances (synthetic demo size), best of {REPEATS}")
    print(f"baseline SimpleITK ImageSeriesReader (local files):   {t_base:.3f} s (median {m_base:.3f})")
    print(f"ours decode+assemble (local files):                   {t_local:.3f} s (median {m_local:.3f})")
    print(f"ours fetch (HTTP, per instance) + decode + assemble:  {t_full:.3f} s (median {m_full:.3f})")
    print(f"ratio baseline/ours, local decode+assemble: {t_base / t_local:.2f}x  (>1 = ours faster)")
    print(f"ratio baseline/ours, ours incl. HTTP fetch: {t_base / t_full:.2f}x")
    return {"baseline_s": t_base, "ours_local_s": t_local, "ours_full_s": t_full, "instances": n_inst}


if __name__ == "__main__":
    main()
