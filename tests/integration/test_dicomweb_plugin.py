"""Orthanc as the project starts it serves DICOMweb (Debian's orthanc-dicomweb), behind the same
login as its REST API: the root the viewer and the series-at-once ingest read."""

from __future__ import annotations

import requests

from engine.archive.orthanc import OrthancArchive
from engine.orthanc_server import DICOMWEB_ROOT
from engine.settings import Settings


def test_dicomweb_root_answers_qido_behind_the_login(orthanc_settings: Settings,
                                                     archive: OrthancArchive) -> None:
    url = orthanc_settings.orthanc.url.rstrip("/") + DICOMWEB_ROOT + "studies"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    answer = requests.get(url, timeout=10, auth=(orthanc_settings.orthanc.username,
                                                 orthanc_settings.orthanc.password),
                          headers={"Accept": "application/dicom+json"})
    assert answer.status_code == 200, answer.text[:200]
    assert answer.json() == []  # the archive fixture emptied it
