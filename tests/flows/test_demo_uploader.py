"""The demo's "scanner": studies go out one by one in visit order, never more than ``ahead`` of the
pipeline, copied into a folder as they are sent."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import shutil
from flows.demo_stream import PacedUploader
from tests.dicom_factory import write_study


def _wait(condition, what: str, timeout_s: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s  # a deadline for a hung thread, not a speed check
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _copier(src: Path, dest: Path):  # noqa: ANN202 - what a study's "send" does here
    def send(path: Path) -> None:
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return send


def _sent_studies(dest: Path) -> int:
    return len({p.relative_to(dest).parts[0] for p in dest.rglob("*.dcm")}) if dest.exists() else 0


def test_uploads_stay_at_most_ahead_studies_in_front_of_the_pipeline(tmp_path: Path) -> None:
    studies = []
    for i in range(4):
        _, files = write_study(tmp_path / "src" / f"v{i}", patient_id="MRN-9", study_date=date(2025, 1, 1 + i),
                               sequences=("T1c",), seed=i)
        studies.append(files)
    dest = tmp_path / "sent"
    uploader = PacedUploader(studies, _copier(tmp_path / "src", dest), ahead=2)
    uploader.start()
    try:
        _wait(lambda: uploader.sent == 2, "the first two studies were not sent")
        assert not uploader.join(timeout=0.5) and uploader.is_alive() and uploader.sent == 2  # waits
        assert _sent_studies(dest) == 2
        uploader.processed(1)
        _wait(lambda: uploader.sent == 3, "a processed study did not let the next one go")
        uploader.processed(3)
        uploader.join(timeout=20)
        assert not uploader.is_alive() and uploader.sent == 4 and uploader.error is None
    finally:
        uploader.stop()
    assert _sent_studies(dest) == 4


def test_stop_ends_a_waiting_uploader(tmp_path: Path) -> None:
    _, files = write_study(tmp_path / "src", patient_id="MRN-8", study_date=date(2025, 2, 1), sequences=("T1c",))
    uploader = PacedUploader([files, files], _copier(tmp_path / "src", tmp_path / "sent"), ahead=1)
    uploader.start()
    _wait(lambda: uploader.sent == 1, "the first study was not sent")
    uploader.stop()
    uploader.join(timeout=20)
    assert not uploader.is_alive() and uploader.sent == 1
