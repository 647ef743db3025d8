"""The TID 1500 report (engine/writeback/report.py): validated by dciodvfy, read back with
highdicom with the values it was given, tracking UIDs the same at every time point of a patient,
the RANO lines where the geometry puts them (pixel and patient coordinates), and the lines of a
follow-up measured on the baseline grid brought back through the registration.

The study is ``tests.writeback_study``: 96 x 96 x 12 voxels of 1 x 1 x 3 mm, origin (-48, -48,
-18) mm LPS, one lesion centred at voxel (48, 48, 6), d1 along x and d2 along y, 24 mm each.

dciodvfy (Debian dicom3tools 1.00~20220618) on the SR: no error, one warning per use of a local
code (``Unrecognized defined term <99GLIOWATCH> ... <Coding Scheme Designator>``), see
``engine/writeback/report_codes.py`` for the concepts the standard does not name.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from engine.writeback.report import build_report
from engine.writeback.report_codes import tracking_uid
from engine.writeback.report_content import content_digest
from engine.writeback.report_inputs import _lesion, _lines_lps, _tracked_on_reference_grid
from engine.writeback.step import derived_uid
from tests.writeback_study import ViewerStudy, write_viewer_study

DCIODVFY_WARNING = ("Warning - Unrecognized defined term <99GLIOWATCH> for value 1 of attribute "
                    "<Coding Scheme Designator>")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> ViewerStudy:
    return write_viewer_study(tmp_path_factory.mktemp("writeback-study"))


def _report(study: ViewerStudy, **changes: object) -> hd.sr.Comprehensive3DSR:
    content = dataclasses.replace(study.content, **changes)
    report = build_report(content, t1c_datasets=study.sources, segmentation=study.segmentation,
                          series_uid=hd.UID(), sop_instance_uid=hd.UID(), series_number=9902,
                          device_uid=derived_uid("GlioWatch", "device"))
    return hd.sr.Comprehensive3DSR.from_dataset(report)  # the content read back as templates


def _lesion_groups(report: hd.sr.Comprehensive3DSR) -> list:
    return [g for g in report.content.get_image_measurement_groups()
            if str(g.tracking_identifier).startswith(("Lesion", "Untracked"))]


def test_dciodvfy_finds_no_error_in_the_report(study: ViewerStudy) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (Debian dicom3tools; `make system` installs it)")
    run = subprocess.run(["dciodvfy", str(study.files[-1])], capture_output=True, text=True, timeout=60,
                         check=False, errors="replace")
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines()]
    assert [line for line in lines if line.startswith("Error")] == []
    assert {line for line in lines if line.startswith("Warning")} == {DCIODVFY_WARNING}


def test_the_report_reads_back_with_the_values_it_was_given(study: ViewerStudy) -> None:
    report = hd.sr.srread(study.files[-1])
    assert report.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert report.StudyInstanceUID == study.study_uid
    volumes = {str(g.tracking_identifier): (g.get_measurements()[-1].value, g.referenced_segment)
               for g in report.content.get_volumetric_roi_measurement_groups()}
    assert {k: v[0] for k, v in volumes.items()} == {"NETC": 0.9, "SNFH": 9.0, "ET": 5.4, "RC": 0.0}
    for number, name in enumerate(("NETC", "SNFH", "ET", "RC"), start=1):
        segment = volumes[name][1]
        assert segment[0].ReferencedSOPSequence[0].ReferencedSegmentNumber == number
        assert segment[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == study.segmentation.SOPInstanceUID
    (lesion,) = _lesion_groups(report)
    assert str(lesion.tracking_identifier) == "Lesion 1"
    assert lesion.tracking_uid == tracking_uid("P-VIEWER", "lesion/1")
    values = {m.name.meaning: m.value for m in lesion.get_measurements()}
    assert (values["Long axis"], values["Short axis"], values["Bidimensional product"]) == (24.0, 24.0, 576.0)
    evaluations = {q.name.meaning: q.value.meaning for q in lesion.get_qualitative_evaluations()}
    assert evaluations["Target lesion"] == "Yes" and evaluations["New lesion"] == "No"
    rano = next(g for g in report.content.get_image_measurement_groups()
                if str(g.tracking_identifier) == "RANO assessment")
    evaluations = {q.name.meaning: q.value.meaning for q in rano.get_qualitative_evaluations()}
    assert evaluations["RANO response on the scan date"] == "RANO baseline"
    comments = [item.TextValue for item in rano[0].ContentSequence
                if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeMeaning == "Comment"]
    assert comments == ["Baseline: SPD 576 mm² over 1 target lesion"]


def test_the_rano_lines_lie_where_the_geometry_puts_them(study: ViewerStudy) -> None:
    """d1 from voxel (36, 48, 6) to (60, 48, 6): LPS (-12, 0, 0) to (12, 0, 0) mm; on the image of
    slice 6, columns 36.5 to 60.5 on row 48.5 (pixel centres at +0.5)."""
    report = hd.sr.srread(study.files[-1])
    (lesion,) = _lesion_groups(report)
    long_axis = next(m for m in lesion.get_measurements() if m.name.meaning == "Long axis")
    scoord, scoord3d = long_axis[0].ContentSequence
    assert (scoord.ValueType, scoord.GraphicType) == ("SCOORD", "POLYLINE")
    assert np.allclose(np.reshape(scoord.GraphicData, (-1, 2)), [[36.5, 48.5], [60.5, 48.5]])
    image = scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert image == study.sources[6].SOPInstanceUID  # instance number 7: slice 6
    assert scoord3d.ValueType == "SCOORD3D"
    assert np.allclose(np.reshape(scoord3d.GraphicData, (-1, 3)), [[-12, 0, 0], [12, 0, 0]])
    assert scoord3d.ReferencedFrameOfReferenceUID == study.sources[0].FrameOfReferenceUID


def test_tracking_uids_stay_the_same_across_three_time_points(study: ViewerStudy) -> None:
    reports = [_report(study, timepoint=n, study_uid=f"1.2.3.{n}") for n in (1, 2, 3)]
    uids = {str(g.tracking_uid) for r in reports for g in _lesion_groups(r)}
    assert uids == {str(tracking_uid("P-VIEWER", "lesion/1"))}
    label_uids = [{str(g.tracking_identifier): str(g.tracking_uid)
                   for g in r.content.get_volumetric_roi_measurement_groups()} for r in reports]
    assert label_uids[0] == label_uids[1] == label_uids[2]
    other_track = _lesion_groups(_report(study, lesions=(dataclasses.replace(study.content.lesions[0],
                                                                               track_id=2),)))
    other_patient = _lesion_groups(_report(study, patient_key="P-OTHER"))
    assert len({*uids, str(other_track[0].tracking_uid), str(other_patient[0].tracking_uid)}) == 3
    points = [r.content.get_image_measurement_groups()[0] for r in reports]
    orders = [[m.value for m in g.get_measurements() if m.name.meaning == "Time Point Order"] for g in points]
    assert orders == [[1.0], [2.0], [3.0]]


def test_the_content_digest_changes_with_the_content_only(study: ViewerStudy) -> None:
    digest = content_digest(study.content, segmentation_uid="1.2")
    assert content_digest(dataclasses.replace(study.content), segmentation_uid="1.2") == digest
    assert content_digest(study.content, segmentation_uid="1.3") != digest
    changed = dataclasses.replace(study.content, volumes_ml=(("NETC", 1.0), ("SNFH", 9.0), ("ET", 5.4), ("RC", 0.0)))
    assert content_digest(changed, segmentation_uid="1.2") != digest


def test_lines_measured_on_the_baseline_grid_come_back_through_the_registration() -> None:
    """A follow-up shifted 10 mm to the right (RAS x -10) of the baseline: the registration maps
    its points +10 mm in x; a line stored on the baseline grid comes back 10 mm to the left, in LPS."""
    matrix = np.eye(4)
    matrix[0, 3] = 10.0  # moving (follow-up) RAS -> reference (baseline) RAS
    stored = [[20, 5, 9], [44, 5, 9], [32, -7, 9], [32, 17, 9]]  # measured on the baseline's grid
    d1, d2 = _lines_lps(stored, matrix, on_reference_grid=True)
    assert np.allclose(d1, [[-10, -5, 9], [-34, -5, 9]]) and np.allclose(d2, [[-22, 7, 9], [-22, -17, 9]])
    own = [[20, 5, 9], [44, 5, 9]]
    assert np.allclose(_lines_lps(own, matrix, on_reference_grid=False)[0],
                       [[-20, -5, 9], [-44, -5, 9]])  # on its own grid: no registration
    assert _lines_lps(stored, None, on_reference_grid=True) is None  # another grid and no registration: no line


def test_a_follow_up_is_measured_on_its_reference_grid_only_after_the_reference() -> None:
    """The rule of engine.patient_assessment: tracked when registered (with resampled labels) into
    an earlier study; a scan before the baseline, or the baseline itself, is measured natively."""
    registration = {"resampled": json.dumps({"labels": "P/1.2/labels.nii.gz"}), "study_uid": "1.2",
                    "reference_study_uid": "1.1", "study_date": date(2025, 2, 1),
                    "reference_date": date(2025, 1, 1)}
    assert _tracked_on_reference_grid(registration)
    assert not _tracked_on_reference_grid({**registration, "study_date": date(2024, 12, 1)})
    assert not _tracked_on_reference_grid({**registration, "reference_study_uid": "1.2"})
    assert not _tracked_on_reference_grid({**registration, "resampled": None})


def test_the_reader_columns_give_the_same_lines() -> None:
    """Rows with the diameter ends of issue 32 (``d1_p0 .. d2_p1``, no grid recorded): the
    registration is inverted for a tracked follow-up only."""
    matrix = np.eye(4)
    matrix[0, 3] = 10.0
    row = {"lesion_index": 1, "track_id": 1, "volume_ml": 1.0, "d1_mm": 24.0, "d2_mm": 24.0,
           "product_mm2": 576.0, "measurable": True, "is_target": True, "is_new": False,
           "d1_p0": "[20, 5, 9]", "d1_p1": "[44, 5, 9]", "d2_p0": "[32, -7, 9]", "d2_p1": "[32, 17, 9]"}
    tracked = _lesion(row, matrix, tracked=True)
    assert np.allclose(tracked.d1_line, [[-10, -5, 9], [-34, -5, 9]])
    assert np.allclose(tracked.d2_line, [[-22, 7, 9], [-22, -17, 9]])
    assert np.allclose(_lesion(row, matrix, tracked=False).d1_line, [[-20, -5, 9], [-44, -5, 9]])
    assert _lesion({**row, "d2_p0": None, "d2_p1": None}, matrix, tracked=False).d2_line is None
