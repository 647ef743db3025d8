"""Pipeline steps against a real DuckDB file: a failed registration is quarantined, never used;
segmentations keep every model identity (config included) with its own label file and sidecar;
an older store file migrates without losing rows."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest
import torch
from test_segmentation_phantom import phantom_study, tiny_config

from engine.dicom.nifti import read_nifti, write_nifti
from engine.ingest import IngestedStudy
from engine.pipeline import (
    RegistrationJob,
    RegistrationOutput,
    StatePaths,
    StudyFiles,
    compute_segmentation,
    sidecar_path,
)
from engine.usecases.register_study import commit_registration
from engine.usecases.segment_study import commit_segmentation, study_files
from engine.registration import SimpleItkRegistrar
from engine.registration.phantom import load_template
from engine.segmentation.inference import MonaiSegmenter
from engine.segmentation.model_config import model_config_from_dict
from engine.segmentation.network import build_network
from engine.segmentation.sanity import label_volumes_ml
from engine.store import open_store
from engine.store import ingest as ingest_sql
from engine.store.db import table_columns
from engine.types import StudyStatus, Volume


def _study(uid: str, day: int) -> IngestedStudy:
    return IngestedStudy(archive_study_id=f"a-{uid}", study_uid=uid, patient_key="P-TEST",
                         study_date=date(2025, 1, day), series=())


def test_failed_registration_quarantines_the_study_and_records_the_qc(tmp_path: Path) -> None:
    template = load_template(spacing_mm=4.0)
    rng = np.random.default_rng(4)
    noise = Volume(array=rng.random(template.image.array.shape).astype(np.float32), affine=template.image.affine)
    result = SimpleItkRegistrar().register(fixed=template.image, moving=noise)
    assert not result.passed
    with open_store(tmp_path / "g.duckdb") as store:
        with store.transaction() as con:
            for uid, day in (("1.1", 1), ("1.2", 20)):
                ingest_sql.record_study(con, _study(uid, day), change_seq=None, seen_at=datetime(2025, 1, 1))
        moving = StudyFiles("1.2", "P-TEST", "patient P-TEST, MRI 2025-01-20", {})
        fixed = StudyFiles("1.1", "P-TEST", "patient P-TEST, MRI 2025-01-01", {})
        outcome = commit_registration(store, RegistrationJob(moving, fixed, "baseline"),
                                      RegistrationOutput("1.2", "baseline", "1.1", result=result))
        assert not outcome.ok and "FAILED" in outcome.message
        assert ingest_sql.known_study(store, "1.2")["status"] == "QUARANTINED"
        q = store.query_dicts("SELECT * FROM quarantine WHERE study_uid = '1.2'")
        assert len(q) == 1 and q[0]["stage"] == "registration"
        assert "quality check" in q[0]["reason"] and "MRI 2025-01-20" in q[0]["reason"]
        reg = store.query_dicts("SELECT * FROM registrations WHERE study_uid = '1.2'")
        assert len(reg) == 1 and reg[0]["passed"] is False and reg[0]["qc_reason"] == result.qc_reason


# ---------------------------------------------------------------- segmentation rows and files

#: the ``segmentations`` table as stores created before config digests have it.
OLD_SEGMENTATIONS = """CREATE TABLE segmentations (
        study_uid VARCHAR NOT NULL, model_name VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
        weights_sha256 VARCHAR NOT NULL, labels_path VARCHAR NOT NULL,
        netc_ml DOUBLE, snfh_ml DOUBLE, et_ml DOUBLE, rc_ml DOUBLE,
        flags VARCHAR NOT NULL DEFAULT '', device VARCHAR, elapsed_s DOUBLE,
        created_at TIMESTAMP NOT NULL, superseded BOOLEAN NOT NULL DEFAULT FALSE,
        PRIMARY KEY (study_uid, model_name, model_version, weights_sha256))"""


def test_an_older_store_keeps_its_segmentations_and_gains_the_config_key(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(OLD_SEGMENTATIONS)
        con.execute("""INSERT INTO segmentations VALUES ('1.1', 'gliowatch-unet', '0.3.0', 'abc', 'P/1.1/l.nii.gz',
                           0.5, 2.0, 1.5, 0.0, 'realigned:FLAIR', 'cpu', 8.4, TIMESTAMP '2025-03-01 10:00', FALSE)""")
    with open_store(path) as store:
        assert "config_sha256" in table_columns(store.con, "segmentations")
        row = store.query_dicts("SELECT * FROM segmentations")
        assert len(row) == 1
        assert row[0]["config_sha256"] == ""  # recorded before config digests
        assert (row[0]["labels_path"], row[0]["et_ml"], row[0]["flags"]) == ("P/1.1/l.nii.gz", 1.5, "realigned:FLAIR")
        assert row[0]["created_at"] == datetime(2025, 3, 1, 10, 0) and row[0]["superseded"] is False
        # the key now includes config_sha256: same model, another config is a second row ...
        insert = """INSERT INTO segmentations (study_uid, model_name, model_version, weights_sha256, config_sha256,
                        labels_path, created_at) VALUES ('1.1', 'gliowatch-unet', '0.3.0', 'abc', ?, 'x', now())"""
        store.con.execute(insert, ["f00d"])
        # ... and the same identity twice is refused
        with pytest.raises(duckdb.ConstraintException):
            store.con.execute(insert, ["f00d"])
        assert store.query("SELECT count(*) FROM segmentations")[0][0] == 2
    with open_store(path) as store:  # opening again changes nothing
        assert store.query("SELECT count(*), count(*) FILTER (config_sha256 = '') FROM segmentations")[0] == (2, 1)
        assert table_columns(store.con, "segmentations").count("config_sha256") == 1


TINY_STORE = tiny_config("tiny-store", spacing_mm=4.0)
#: the same model and version with changed decision weights
RC_WEIGHTED = {**TINY_STORE, "decision_weights": {"RC": 18.0}}


def _segmenter(config: dict, net: torch.nn.Module) -> MonaiSegmenter:
    return MonaiSegmenter(config=model_config_from_dict(config), net=net, weights_sha256="ab" * 32, device="cpu")


def _store_with_one_study(tmp_path: Path) -> tuple:
    """A store holding study 1.1 with a phantom's four volumes written under ``tmp_path``."""
    paths = StatePaths(tmp_path / "volumes", tmp_path / "labels", tmp_path / "registered")
    paths.volumes_dir.mkdir()
    volumes, _ = phantom_study(shape=(24, 24, 24))
    store = open_store(tmp_path / "g.duckdb")
    with store.transaction() as con:
        ingest_sql.record_study(con, _study("1.1", 1), change_seq=None, seen_at=datetime(2025, 1, 1))
        for seq, volume in volumes.items():
            write_nifti(volume, paths.volumes_dir / f"{seq}.nii.gz")
            con.execute("""INSERT INTO volumes VALUES (?, '1.1', ?, ?, '[]', '[]', '[]')""",
                        [f"s-{seq}", str(seq), f"{seq}.nii.gz"])
    return store, paths


@pytest.fixture
def segmented_twice(tmp_path: Path):
    """One study segmented by the same weights under two configs (decision weights changed,
    version not bumped); returns the store, the state paths and both outputs."""
    store, paths = _store_with_one_study(tmp_path)
    torch.manual_seed(0)
    net = build_network(model_config_from_dict(TINY_STORE))
    outputs = [_segment(store, paths, TINY_STORE, net), _segment(store, paths, RC_WEIGHTED, net)]
    yield store, paths, net, outputs
    store.close()


def _segment(store, paths: StatePaths, config: dict, net: torch.nn.Module):  # noqa: ANN001, ANN202
    files = study_files(store, "1.1")
    out = compute_segmentation(files, segmenter=_segmenter(config, net), paths=paths)
    assert not out.error, out.error_detail
    assert commit_segmentation(store, files, out).ok
    return out


def test_a_config_change_keeps_the_earlier_row_and_its_label_file(segmented_twice) -> None:
    store, paths, _, (old, new) = segmented_twice
    assert old.weights_sha256 == new.weights_sha256 and old.model_version == new.model_version
    assert old.labels_path != new.labels_path
    assert old.labels_path.endswith(f"_{old.weights_sha256[:8]}_{old.config_sha256[:8]}.nii.gz")
    rows = {r["config_sha256"]: r for r in store.query_dicts("SELECT * FROM segmentations WHERE study_uid = '1.1'")}
    assert set(rows) == {old.config_sha256, new.config_sha256}
    assert rows[old.config_sha256]["superseded"] and not rows[new.config_sha256]["superseded"]
    # each row's file still holds the labels the row describes
    for row in rows.values():
        labels = read_nifti(paths.labels_dir / row["labels_path"])
        ml = label_volumes_ml(np.asarray(labels.array), voxel_ml=labels.voxel_ml)
        assert [row["netc_ml"], row["snfh_ml"], row["et_ml"], row["rc_ml"]] == pytest.approx(
            [ml[k] for k in ("NETC", "SNFH", "ET", "RC")])
    assert rows[new.config_sha256]["rc_ml"] > rows[old.config_sha256]["rc_ml"]  # the weight changed the labels


def test_the_same_model_identity_segmenting_again_replaces_its_own_row(segmented_twice) -> None:
    store, paths, net, (_, new) = segmented_twice
    again = _segment(store, paths, RC_WEIGHTED, net)
    assert (again.labels_path, again.config_sha256) == (new.labels_path, new.config_sha256)
    assert store.query("SELECT count(*), count(*) FILTER (NOT superseded) FROM segmentations")[0] == (2, 1)


def test_the_sidecar_records_the_model_identity_and_the_label_metadata(segmented_twice) -> None:
    _, paths, _, (_, new) = segmented_twice
    target = paths.labels_dir / new.labels_path
    side = sidecar_path(target)
    assert side.name == target.name.removesuffix(".nii.gz") + ".json"
    data = json.loads(side.read_text())
    assert {k: data[k] for k in ("study_uid", "patient_key", "model_name", "model_version", "weights_sha256",
                                 "config_sha256", "device")} == {
        "study_uid": "1.1", "patient_key": "P-TEST", "model_name": "tiny-store", "model_version": "0.0.1",
        "weights_sha256": new.weights_sha256, "config_sha256": new.config_sha256, "device": "cpu"}
    assert data["flags"] == list(new.flags)
    assert data["volumes_ml"] == pytest.approx(new.volumes_ml)
    assert data["metadata"]["reference_sequence"] == "T1c"
    assert data["metadata"]["config_sha256"] == new.config_sha256
    assert "2025-01-01" not in side.read_text()  # no exam date
    assert not [p for p in side.parent.iterdir() if p.name.endswith(".tmp")]


def test_a_model_name_or_version_with_path_characters_stays_in_the_study_folder(tmp_path: Path) -> None:
    """A bundle's name (``bundle:DIR``) and version come from its files; ``/``, ``..`` or ``:``
    there must not move the label file out of the study's folder. The store keeps them as given."""
    import doctest

    from engine import pipeline

    failures, tried = doctest.testmod(pipeline, raise_on_error=False, verbose=False)[:2]
    assert failures == 0 and tried > 0
    odd = {**TINY_STORE, "name": "bundle:../../escape", "version": "1.0/../../beta"}
    store, paths = _store_with_one_study(tmp_path)
    with store:
        torch.manual_seed(0)
        out = _segment(store, paths, odd, build_network(model_config_from_dict(odd)))
        rel = Path(out.labels_path)
        assert rel.parent == Path(study_files(store, "1.1").patient_key) / "1.1"
        assert rel.name.startswith("labels_bundle-escape_1.0-beta_")
        assert (paths.labels_dir / rel).is_file()
        assert [p for p in tmp_path.rglob("*.nii.gz") if paths.labels_dir not in p.parents
                and paths.volumes_dir not in p.parents] == []
        row = store.query_dicts("SELECT model_name, model_version FROM segmentations")[0]
        assert (row["model_name"], row["model_version"]) == ("bundle:../../escape", "1.0/../../beta")


# ---------------------------------------------------------------- cavity before the first surgery

def _labels_with_cavity(rc_voxels: int) -> Volume:
    """A 1 mm label volume: a 3x3x3 enhancing block and ``rc_voxels`` voxels of cavity elsewhere."""
    labels = np.zeros((40, 40, 40), dtype=np.uint8)
    labels[2:5, 2:5, 2:5] = 3
    labels.reshape(-1)[20_000:20_000 + rc_voxels] = 4
    return Volume(array=labels, affine=np.eye(4))


@pytest.mark.parametrize("surgery_day", [10, None])
def test_a_cavity_before_the_first_recorded_surgery_raises_a_qa_alert(tmp_path: Path, surgery_day: int | None) -> None:
    from engine.criteria import Mode, Profile, load_criteria
    from engine.events import ClinicalEvent, EventType
    from engine.usecases.patient_course import assess_patient_course
    from engine.pipeline import SegmentationOutput
    from engine.store import assessment as assessment_sql
    from engine.store import pipeline as pipeline_sql

    paths = StatePaths(tmp_path / "volumes", tmp_path / "labels", tmp_path / "registered")
    paths.labels_dir.mkdir(parents=True)
    # pre-op (day 1, 0.9 mL of cavity), the surgery's own day (2 mL), after it (3 mL); 1 mm voxels
    scans = (("2.1", 1, 900), ("2.2", 10, 2000), ("2.3", 20, 3000))
    with open_store(tmp_path / "g.duckdb") as store:
        with store.transaction() as con:
            for uid, day, rc in scans:
                ingest_sql.record_study(con, _study(uid, day), change_seq=None, seen_at=datetime(2025, 1, 1))
                write_nifti(_labels_with_cavity(rc), paths.labels_dir / f"{uid}.nii.gz")
                pipeline_sql.record_segmentation(con, study_uid=uid, output=SegmentationOutput(
                    uid, labels_path=f"{uid}.nii.gz", volumes_ml={"RC": rc / 1000}, model_name="m",
                    model_version="1", weights_sha256="w"))
                ingest_sql.set_study_status(con, uid, StudyStatus.SEGMENTED)
            if surgery_day is not None:
                assessment_sql.import_clinical_events(
                    con, [ClinicalEvent("P-TEST", date(2025, 1, surgery_day), EventType.SURGERY, "GTR")],
                    source="test", entered_by="test")
        assess_patient_course(store, patient_key="P-TEST", criteria=load_criteria(Profile.RANO2010),
                              mode=Mode.TWO_D, paths=paths, alert_sinks=("dashboard",), base_url="http://x")
        flagged = store.query_dicts("SELECT study_uid, reason FROM alerts WHERE alert_type = 'QA_SEGMENTATION_FLAGGED'")
        measured = dict(store.query("SELECT study_uid, rc_ml FROM measurements WHERE NOT superseded"))
    assert measured == pytest.approx({"2.1": 0.9, "2.2": 2.0, "2.3": 3.0})
    if surgery_day is None:  # a cavity needs a surgery: every scan with one over the limit is flagged
        assert sorted(r["study_uid"] for r in flagged) == ["2.1", "2.2", "2.3"]
        assert all("cavity_without_recorded_surgery:RC=" in r["reason"] for r in flagged)
    else:  # only the scan before the surgery's day; the flag quotes the volume, never a date
        assert [r["study_uid"] for r in flagged] == ["2.1"]
        assert "cavity_before_surgery:RC=0.9mL" in flagged[0]["reason"]
        assert "2025" not in flagged[0]["reason"]
