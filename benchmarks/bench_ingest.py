"""Fetch + decode + assemble one 4-series study from Orthanc, against SimpleITK reading the same
files from local disk, and against the per-instance path ingest used before DICOMweb; one run.

Baseline: ``SimpleITK.ImageSeriesReader`` on the study's DICOM files on local disk (no network),
series after series. Timed in the same run, on the same study in a real Orthanc on loopback:

- ``dicomweb``: what ``engine.ingest`` runs now: every series as one WADO-RS multipart response
  (Orthanc's DICOMweb plugin), parsed part by part as it streams (uncompressed instances indexed
  by ``engine.dicom.part10_index``), series fetched concurrently (``SERIES_THREADS``) over one
  keep-alive pool, then the same validation and assembly;
- ``dicomweb, pydicom parse``: the same fetch with every part read by ``pydicom.dcmread`` (the
  parse before ``part10_index``), same assembly;
- ``per-instance, pooled``: the fallback when Orthanc has no DICOMweb plugin (one REST request per
  instance on the same pooled session, series concurrently);
- ``per-instance, before``: the fetch before (orthanc-api-client ``/instances/{id}/file``, 4
  threads per series, series one after another), with today's decode and assembly;
- ``local decode+assemble``: our decode + assembly alone on the local files (no fetch).

Run: ``python -m benchmarks.bench_ingest`` (starts its own Orthanc on free ports).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pydicom
import SimpleITK as sitk

from benchmarks.harness import orthanc_environ, running_orthanc
from engine.archive.orthanc import OrthancArchive
from engine.dicom.reader import datasets_from_bytes, load_dataset_files
from engine.dicom.volume import assemble_volume
from engine.ingest import SERIES_THREADS, fetch_series_objects
from engine.modelling.synth import generate_cohort
from engine.settings import load_settings

REPEATS = 7


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = json.loads(generate_cohort(n_patients=1, seed=11, out_dir=root / "cohort", size="demo",
                                              n_visits=3).read_text())
        visit = manifest["patients"][0]["visits"][0]
        series_dirs = [root / "cohort" / s["dir"] for s in visit["series"]]
        files = {d: sorted(d.glob("*.dcm")) for d in series_dirs}
        n_inst = sum(len(v) for v in files.values())
        n_bytes = sum(f.stat().st_size for v in files.values() for f in v)
        settings = load_settings(environ=orthanc_environ(root / "state", password="bench"))
        with running_orthanc(settings):
            url = settings.orthanc.url
            web = OrthancArchive(url, username="gliowatch", password="bench")
            rest = OrthancArchive(url, username="gliowatch", password="bench", use_dicomweb=False)
            for fs in files.values():
                for f in fs:
                    web.upload_file(f)
            info = web.study(web.list_studies()[0])
            series = [web.series(s) for s in info.series_ids]
            assert web.fetcher.uses_dicomweb, "Orthanc has no DICOMweb plugin (install orthanc-dicomweb)"

            def streamed(archive: OrthancArchive) -> Callable[[], None]:
                def run() -> None:
                    def one(meta):  # noqa: ANN001, ANN202
                        return assemble_volume(fetch_series_objects(archive, info, meta).images)

                    with ThreadPoolExecutor(max_workers=SERIES_THREADS) as pool:
                        list(pool.map(one, series))
                return run

            def pydicom_parse() -> None:
                def one(meta):  # noqa: ANN001, ANN202
                    blobs = web.fetch_series(info, meta)
                    return assemble_volume([pydicom.dcmread(BytesIO(b)) for b in blobs])

                with ThreadPoolExecutor(max_workers=SERIES_THREADS) as pool:
                    list(pool.map(one, series))

            def before() -> None:
                for s in series:
                    with ThreadPoolExecutor(max_workers=4) as pool:
                        blobs = list(pool.map(web.fetch_instance, s.instance_ids))
                    assemble_volume(datasets_from_bytes(blobs))

            def local() -> None:
                for fs in files.values():
                    assemble_volume(load_dataset_files(fs))

            def baseline() -> None:
                for d in series_dirs:
                    reader = sitk.ImageSeriesReader()
                    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(d)))
                    sitk.GetArrayFromImage(reader.Execute())

            paths = {"dicomweb": streamed(web), "dicomweb_pydicom": pydicom_parse,
                     "rest_pooled": streamed(rest), "before": before,
                     "local": local, "baseline": baseline}
            for fn in paths.values():
                fn()  # warm-up: imports, connection pools, page cache
            runs: dict[str, list[float]] = {k: [] for k in paths}
            for _ in range(REPEATS):  # interleaved, so load changes hit every path alike
                for name, fn in paths.items():
                    runs[name].append(_timed(fn))
            t = {k: (min(v), statistics.median(v)) for k, v in runs.items()}
    base = t["baseline"][0]
    print(f"study: 4 series, {n_inst} instances, {n_bytes / 1e6:.1f} MB (synthetic demo size); best / median "
          f"of {REPEATS}, paths interleaved")
    rows = [("baseline", "SimpleITK ImageSeriesReader, local files"),
            ("dicomweb", "ours: DICOMweb series stream + decode + assemble"),
            ("dicomweb_pydicom", "ours: same DICOMweb stream, pydicom.dcmread parse"),
            ("rest_pooled", "ours: per-instance fallback (pooled) + same"),
            ("before", "ours before: per-instance (4 threads/series) + same"),
            ("local", "ours: decode + assemble only, local files")]
    for key, label in rows:
        print(f"  {label:<52} {t[key][0]:.3f} s (median {t[key][1]:.3f})  baseline/this {base / t[key][0]:.2f}x")
    print(f"ratio baseline/ours (DICOMweb, incl. fetch): {base / t['dicomweb'][0]:.2f}x  (>1 = ours faster); "
          f"DICOMweb vs per-instance before: {t['before'][0] / t['dicomweb'][0]:.1f}x faster; "
          f"indexed parse vs pydicom parse: {t['dicomweb_pydicom'][0] / t['dicomweb'][0]:.1f}x faster")
    return {"instances": n_inst, **{f"{k}_s": v[0] for k, v in t.items()}}


if __name__ == "__main__":
    main()
