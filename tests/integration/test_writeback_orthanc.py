"""Write-back into the real Orthanc (issue 33): after the real flow assessed a synthetic patient's
three studies, each study holds its DICOM SEG, TID 1500 SR and (``[writeback] key_image`` on) its
key image, a secondary capture, in the same study; they pass
dciodvfy without errors and read back with highdicom with the store's values and tracking UIDs
that stay the same at every tracked time point; further cycles find no work (the new instances
re-stabilise the studies, yet nothing is re-ingested and nothing loops); a re-score (other
criteria, LABELMAP SEG, delete superseded) writes new series (a new key image too), records what
they supersede and deletes the old ones from Orthanc.

One synthetic patient of 4 visits (with its clinical events: the RANO baseline is the first scan
after radiotherapy, the 3rd visit, so the lesions of the last two are tracked) through
segmentation (shipped model), registration and assessment: the slow part is that pipeline
(about 4 minutes on 2 busy cores), which the write-back follows.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from PIL import Image

from engine.archive.orthanc import OrthancArchive
from engine.modelling.synth import generate_cohort
from engine.modelling.synth.cohort import upload_in_visit_order
from engine.settings import Settings
from flows.prefect_env import configure_prefect
from tests.integration.test_stream import wait_stable

pytestmark = pytest.mark.integration

SEG_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image (the key image)


def _objects_in_orthanc(archive: OrthancArchive, study_uid: str) -> dict[str, list[pydicom.Dataset]]:
    """{SOP class UID: datasets} of the SEG/SR/SC instances in the study (fetched from Orthanc)."""
    found: dict[str, list[pydicom.Dataset]] = {}
    for study_id in archive.list_studies():
        info = archive.study(study_id)
        if info.study_uid != study_uid:
            continue
        for series_id in info.series_ids:
            for instance_id in archive.series(series_id).instance_ids:
                ds = pydicom.dcmread(io.BytesIO(archive.fetch_instance(instance_id)))
                if ds.SOPClassUID in SEG_CLASSES or ds.SOPClassUID in (SR_CLASS, SC_CLASS):
                    found.setdefault(str(ds.SOPClassUID), []).append(ds)
    return found


def _other_evidence(sr: pydicom.Dataset) -> set[str]:
    """SOP Instance UIDs the SR lists as pertinent other evidence (the earlier studies' objects)."""
    return {str(ref.ReferencedSOPInstanceUID) for study in sr.get("PertinentOtherEvidenceSequence", [])
            for series in study.ReferencedSeriesSequence for ref in series.ReferencedSOPSequence}


def _dciodvfy_errors(ds: pydicom.Dataset, tmp_path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.fail("dciodvfy is not installed: run `make system` (Debian package 'dicom3tools')")
    path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def test_assessed_studies_carry_seg_and_sr_and_the_watcher_stays_idle(
        archive: OrthancArchive, settings: Settings, tmp_path: Path, artifacts_dir: Path) -> None:
    manifest_path = generate_cohort(n_patients=1, seed=5, out_dir=tmp_path / "cohort", size="test",
                                    n_visits=4, scenarios=["progression"])
    settings = dataclasses.replace(settings, writeback=dataclasses.replace(settings.writeback, key_image=True))
    n_studies = len(json.loads(manifest_path.read_text())["patients"][0]["visits"])
    configure_prefect(settings)
    from flows.cmd_events import import_events
    from flows.process import reassess_patients
    from flows.runtime import build_runtime
    from flows.watch import watch_cycle

    rt = build_runtime(settings, archive=archive)
    try:
        import_events(rt.store, tmp_path / "cohort" / "clinical_events.csv", key_salt=rt.key_salt,
                      entered_by="test")
        upload_in_visit_order(manifest_path, archive)
        wait_stable(archive, n_studies)
        watch_cycle(rt, reconcile=True)
        store = rt.store
        assessed = [r[0] for r in store.query(
            "SELECT study_uid FROM studies WHERE status = 'ASSESSED' ORDER BY study_date")]
        assert len(assessed) >= 3
        status = dict(store.query("SELECT study_uid, status FROM writeback_status"))
        assert status == {uid: "WRITTEN" for uid in assessed}

        lesion_uids: dict[str, set[str]] = {}
        growth_stated: dict[str, bool] = {}
        for uid in assessed:
            objects = _objects_in_orthanc(archive, uid)
            seg, sr = objects["1.2.840.10008.5.1.4.1.1.66.4"][0], objects[SR_CLASS][0]
            key_image = objects[SC_CLASS][0]
            assert seg.StudyInstanceUID == sr.StudyInstanceUID == key_image.StudyInstanceUID == uid
            assert _dciodvfy_errors(seg, tmp_path) == [] and _dciodvfy_errors(sr, tmp_path) == []
            assert _dciodvfy_errors(key_image, tmp_path) == []
            assert key_image.BurnedInAnnotation == "YES" and list(key_image.ImageType)[:2] == ["DERIVED", "SECONDARY"]
            Image.fromarray(key_image.pixel_array).save(artifacts_dir / "key-image-synthetic-last.png")  # to look at
            report = hd.sr.Comprehensive3DSR.from_dataset(sr).content
            measurement = store.query_dicts(
                "SELECT * FROM measurements WHERE study_uid = ? AND NOT superseded", [uid])[0]
            volumes = {g.tracking_identifier: g.get_measurements()[-1].value
                       for g in report.get_volumetric_roi_measurement_groups()}
            assert volumes == pytest.approx({"NETC": measurement["netc_ml"], "SNFH": measurement["snfh_ml"],
                                             "ET": measurement["et_ml"], "RC": measurement["rc_ml"]}, abs=1e-4)
            lesions = store.query_dicts("SELECT * FROM lesions WHERE measurement_id = ? ORDER BY lesion_index",
                                        [measurement["measurement_id"]])
            groups = [g for g in report.get_image_measurement_groups()
                      if str(g.tracking_identifier).startswith(("Lesion", "Untracked"))]
            assert len(groups) == sum(1 for l in lesions if l["d1_p0"])
            for group in groups:
                values = {m.name.meaning: m.value for m in group.get_measurements()}
                if str(group.tracking_identifier).startswith("Lesion "):
                    track = int(str(group.tracking_identifier).split()[1])
                    row = next(l for l in lesions if l["track_id"] == track)
                    lesion_uids.setdefault(str(group.tracking_identifier), set()).add(str(group.tracking_uid))
                    assert values["Long axis"] == pytest.approx(row["d1_mm"], abs=1e-4)
                    assert values["Bidimensional product"] == pytest.approx(row["product_mm2"], abs=1e-3)
            rano = next(g for g in report.get_image_measurement_groups()
                        if str(g.tracking_identifier) == "RANO assessment")
            evaluations = {q.name.meaning: q.value.meaning for q in rano.get_qualitative_evaluations()}
            assert "RANO response on the scan date" in evaluations
            growth_stated[uid] = any(m.name.meaning == "Volume doubling time" for m in rano.get_measurements())
        assert lesion_uids, "no tracked lesion was reported"
        # each report refers to the current SEGs of the patient's earlier studies
        current_seg = dict(store.query(
            "SELECT study_uid, sop_instance_uid FROM writeback_objects WHERE kind = 'SEG' AND superseded_by IS NULL"))
        for i, uid in enumerate(assessed):
            sr = _objects_in_orthanc(archive, uid)[SR_CLASS][0]
            assert _other_evidence(sr) == {current_seg[u] for u in assessed[:i]}, uid
        # the patient's growth fits (over the whole course) are stated by the latest study's report only
        evaluable = store.query("SELECT count(*) FROM growth WHERE evaluable AND vdt_days IS NOT NULL")[0][0]
        assert growth_stated == {uid: bool(evaluable) and uid == assessed[-1] for uid in assessed}
        assert all(len(uids) == 1 for uids in lesion_uids.values()), lesion_uids  # same UID at every time point
        tracked = store.query(
            """SELECT l.track_id, count(DISTINCT l.study_uid) FROM lesions l JOIN measurements m USING (measurement_id)
               WHERE NOT m.superseded AND l.track_id IS NOT NULL AND l.d1_p0 IS NOT NULL GROUP BY 1""")
        assert any(n >= 2 for _, n in tracked), store.query(
            """SELECT m.scan_date, l.lesion_index, l.track_id, l.is_new, l.d1_mm, m.registration_id
               FROM lesions l JOIN measurements m USING (measurement_id) WHERE NOT m.superseded ORDER BY 1""")

        objects_before = store.query("SELECT count(*) FROM writeback_objects")[0][0]
        revisions_before = store.query("SELECT study_uid, revision FROM studies ORDER BY study_uid")
        for _ in range(3):  # adding SEG/SR/SC re-stabilised the studies: no re-ingest, no loop
            wait_stable(archive, n_studies)
            report = watch_cycle(rt, reconcile=True)
            assert report.ingested == [] and report.quarantined == []
        assert store.query("SELECT count(*) FROM writeback_objects")[0][0] == objects_before == 3 * len(assessed)
        assert store.query("SELECT study_uid, revision FROM studies ORDER BY study_uid") == revisions_before
        old_series = {r[0] for r in store.query("SELECT series_uid FROM writeback_objects")}
    finally:
        rt.close()

    rescore = dataclasses.replace(
        settings, assessment=dataclasses.replace(settings.assessment, profile="mrano"),
        writeback=dataclasses.replace(settings.writeback, labelmap=True, delete_superseded=True))
    rt = build_runtime(rescore, archive=archive)
    try:
        patients = [r[0] for r in rt.store.query("SELECT DISTINCT patient_key FROM studies")]
        reassess_patients(rt, patients)
        watch_cycle(rt)
        rows = rt.store.query_dicts("SELECT * FROM writeback_objects")
        new = [r for r in rows if r["series_uid"] not in old_series]
        assert len(new) == 3 * len(assessed)  # a new SEG (LABELMAP), SR and key image per study
        superseded = [r for r in rows if r["series_uid"] in old_series]
        assert all(r["superseded_by"] in {n["series_uid"] for n in new} for r in superseded)
        assert all(r["deleted_at"] is not None for r in superseded)
        for uid in assessed:
            objects = _objects_in_orthanc(archive, uid)
            assert {k: len(v) for k, v in objects.items()} == {"1.2.840.10008.5.1.4.1.1.66.7": 1, SR_CLASS: 1,
                                                                 SC_CLASS: 1}
    finally:
        rt.close()
