"""`gliowatch export PATIENT_KEY --out DIR`: the patient's written SEG, SR and key image as files, current
ones unless --all, no overwrite without --force, a clear answer when there is nothing."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pydicom
import pytest

from engine.store import open_store
from engine.store import writeback as writeback_sql
from engine.writeback.key_image import build_key_image
from flows.cli import main
from tests.writeback_study import ViewerStudy, write_viewer_study

NOW = datetime(2025, 6, 1, 12, 0)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, ViewerStudy]:
    """A store with one study whose SEG was re-written (the first one superseded), its SR and key image."""
    state_dir = tmp_path / "state"
    monkeypatch.setenv("GLIOWATCH_STATE_DIR", str(state_dir))
    study = write_viewer_study(tmp_path / "study")
    writeback_dir = state_dir / "writeback"
    key_image = tmp_path / "sc.dcm"
    build_key_image(study.content, study.sources, study.labels, series_uid="1.2.9.3", sop_instance_uid="1.2.9.3.1",
                    series_number=9903).save_as(key_image, enforce_file_format=True)
    with open_store(state_dir / "gliowatch.duckdb") as store, store.transaction() as con:
        con.execute("""INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status,
                           seen_at, ingested_at) VALUES (?, 'a1', 'P-EXPORT', DATE '2025-03-14', 'ASSESSED', ?, ?)""",
                    [study.study_uid, NOW, NOW])
        for kind, series_uid, source in (("SEG", "1.2.9.1", study.files[-2]),
                                         ("SEG", study.seg_series_uid, study.files[-2]),
                                         ("SR", study.sr_series_uid, study.files[-1]),
                                         ("SC", "1.2.9.3", key_image)):
            relative = f"P-EXPORT/{study.study_uid}/{kind}_{series_uid}.dcm"
            (writeback_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (writeback_dir / relative).write_bytes(source.read_bytes())
            writeback_sql.record_object(con, series_uid=series_uid, sop_instance_uid=f"{series_uid}.1",
                                        study_uid=study.study_uid, patient_key="P-EXPORT", kind=kind,
                                        content_key=series_uid, file_path=relative, archive_instance_id=None)
    return state_dir, study


def test_export_writes_the_current_seg_sr_and_key_image_as_dicom_files(state, tmp_path: Path, capsys) -> None:
    _, study = state
    out = tmp_path / "out"
    assert main(["export", "P-EXPORT", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["2025-03-14_SC_1.2.9.3.dcm", f"2025-03-14_SEG_{study.seg_series_uid}.dcm",
                     f"2025-03-14_SR_{study.sr_series_uid}.dcm"]
    assert pydicom.dcmread(out / names[0]).SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert pydicom.dcmread(out / names[2]).SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert "exported 3 object(s) of P-EXPORT" in capsys.readouterr().out


def test_export_refuses_to_overwrite_without_force_and_all_adds_superseded(state, tmp_path: Path,
                                                                          capsys) -> None:
    out = tmp_path / "out"
    assert main(["export", "P-EXPORT", "--out", str(out)]) == 0
    assert main(["export", "P-EXPORT", "--out", str(out)]) == 1
    assert "use --force to overwrite" in capsys.readouterr().out
    assert main(["export", "P-EXPORT", "--out", str(out), "--force", "--all"]) == 0
    assert len(list(out.iterdir())) == 4  # the superseded SEG too


def test_export_of_a_patient_without_objects_says_so(state, tmp_path: Path, capsys) -> None:
    assert main(["export", "P-NONE", "--out", str(tmp_path / "out")]) == 1
    assert "No SEG, SR or key image written back for P-NONE" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
