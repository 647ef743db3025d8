"""Series-at-once ingest through the real Orthanc: one DICOMweb multipart response per series gives
exactly the stored files; without the plugin (a second Orthanc started without it) ingest falls
back to one REST request per instance with the same result; a bad series is refused with the
series named on both paths, and a study left without a usable series is quarantined."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from engine import orthanc_server
from engine.archive.orthanc import OrthancArchive
from engine.ingest import ingest_study
from engine.series_rules import load_series_rules
from engine.settings import Settings
from engine.store import open_store
from tests.dicom_factory import write_series, write_study
from tests.integration.test_stream import cycle, upload, wait_stable
from tests.support import free_port, make_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def plain_orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second real Orthanc, started without the DICOMweb plugin (as where orthanc-dicomweb is
    not installed)."""
    settings = make_settings(tmp_path_factory.mktemp("plain-orthanc"), free_port())
    paths = orthanc_server.OrthancPaths(settings.orthanc_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(orthanc_server, "dicomweb_plugins", lambda: [])
        orthanc_server.start(settings.orthanc, paths, password=settings.orthanc.password)
    yield settings
    orthanc_server.stop(paths)


def _archive(settings: Settings, **kwargs: object) -> OrthancArchive:
    return OrthancArchive(settings.orthanc.url, username=settings.orthanc.username,
                          password=settings.orthanc.password, **kwargs)


def _ingest(archive: OrthancArchive, settings: Settings, volumes: Path):  # noqa: ANN202
    (study_id,) = archive.list_studies()
    return ingest_study(archive, study_id, rules=load_series_rules(settings.series_rules),
                        volumes_dir=volumes, key_salt=settings.privacy.key_salt)


def test_one_multipart_response_holds_exactly_the_stored_instances(
    archive: OrthancArchive, tmp_path: Path
) -> None:
    _, files = write_study(tmp_path / "v1", patient_id="MRN-31", study_date=date(2025, 6, 1),
                           sequences=("T1c", "FLAIR"))
    upload(archive, files)
    assert archive.fetcher.uses_dicomweb  # the project's Orthanc loads orthanc-dicomweb
    info = archive.study(archive.list_studies()[0])
    for series_id in info.series_ids:
        meta = archive.series(series_id)
        streamed = sorted(archive.fetch_series(info, meta))
        one_by_one = sorted(archive.fetch_instance(i) for i in meta.instance_ids)
        assert len(streamed) == len(meta.instance_ids) and streamed == one_by_one


def test_fallback_without_the_plugin_gives_the_same_volumes(
    archive: OrthancArchive, settings: Settings, plain_orthanc: Settings, tmp_path: Path
) -> None:
    _, files = write_study(tmp_path / "v1", patient_id="MRN-32", study_date=date(2025, 6, 2))
    plain = _archive(plain_orthanc)
    plain.delete_everything()
    upload(archive, files)
    upload(plain, files)
    assert not plain.fetcher.uses_dicomweb  # asked Orthanc: no dicom-web plugin there
    web = _ingest(archive, settings, tmp_path / "web")
    rest = _ingest(plain, settings, tmp_path / "rest")
    assert web.sequences == rest.sequences and len(web.sequences) == 4
    for a, b in zip(web.series, rest.series, strict=True):
        assert (a.series_uid, a.status, a.shape, a.affine_ras) == (b.series_uid, b.status, b.shape, b.affine_ras)
        np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "web" / a.volume_path).dataobj),
                                      np.asarray(nib.load(tmp_path / "rest" / b.volume_path).dataobj))


@pytest.mark.parametrize("use_dicomweb", [None, False], ids=["dicomweb", "per-instance"])
def test_bad_series_refused_by_name_and_study_without_images_quarantined(
    archive: OrthancArchive, settings: Settings, tmp_path: Path, use_dicomweb: bool | None
) -> None:
    uid, files = write_study(tmp_path / "v1", patient_id="MRN-33", study_date=date(2025, 6, 3),
                             sequences=("T1c",))
    flair = write_series(tmp_path / "v1" / "FLAIR", sequence="FLAIR", patient_id="MRN-33",
                         study_uid=uid, study_date=date(2025, 6, 3))
    flair[4].unlink()  # a gap: not one regular volume
    bad_uid, bad = write_study(tmp_path / "v2", patient_id="MRN-34", study_date=date(2025, 6, 4),
                               sequences=("T1c",))
    bad[2].unlink()
    upload(archive, files + [f for f in flair if f.exists()] + [f for f in bad if f.exists()])
    wait_stable(archive, 2)
    fetching = _archive(settings, use_dicomweb=use_dicomweb)
    assert fetching.fetcher.uses_dicomweb is (use_dicomweb is None)
    with open_store(settings.db_path) as store:
        report = cycle(fetching, settings, store)
        assert report.ingested == [uid] and report.quarantined == [bad_uid]
        q = store.query_dicts("SELECT study_uid, reason FROM quarantine ORDER BY quarantine_id")
    flair_uid = str(pydicom.dcmread(flair[0], stop_before_pixels=True).SeriesInstanceUID)
    flair_rows = [r for r in q if flair_uid in r["reason"]]
    assert len(flair_rows) == 1 and "AX T2 FLAIR" in flair_rows[0]["reason"]
    last = q[-1]
    assert last["study_uid"] == bad_uid and "No usable T1, T1c, T2 or FLAIR series" in last["reason"]
