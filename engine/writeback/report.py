"""Build the Comprehensive 3D SR (TID 1500 Measurement Report) of one assessed study (highdicom).

Pure: from a :class:`~engine.writeback.report_content.ReportContent`, the T1c headers, the
study's DICOM Segmentation and the prior studies' objects, one ``hd.sr.Comprehensive3DSR``.

* Per label (NETC, SNFH, ET, RC) a **volumetric group** (TID 1411): tracking UID of the patient
  and label, the volume in mL, the referenced SEG segment (segment number = label value).
* Per ET lesion a **measurement group** (TID 1501): tracking identifier ``Lesion <track>`` and a
  UID derived from patient key + track id (the same in every report of the patient; an untracked
  lesion gets one from the study and its component number); long axis d1 and short axis d2 (mm),
  each INFERRED FROM its own SCOORD3D POLYLINE on the T1c slice (the RANO bidimensional
  measurement as two perpendicular lines, the encoding OHIF writes for its bidirectional tool),
  the bidimensional product (mm²), the lesion's volume, and whether it is measurable, a target,
  new. Not TID 1410: a planar ROI group holds one region and highdicom (rightly, TID 1410 row 8)
  refuses coordinates on its measurements, so it cannot carry two lines.
* One **RANO group** (TID 1501): the sum of products, change from baseline and nadir (%), the
  response as called and as final, each reason as a comment, the pseudoprogression prior with its
  interval and method, and the growth fits (doubling time, growth rate, method = model).
* Every group carries the **time point context** (TID 1502): time point "TP<n>", its order, the
  subject time point identifier, Baseline / Posttreatment, and the days since the end of
  radiotherapy when it is recorded.
* **Evidence**: the T1c instances and the SEG (current requested procedure evidence); the prior
  studies' objects given in ``prior_evidence`` become pertinent other evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import engine
from engine.types import Label
from engine.writeback import report_codes as rc
from engine.writeback.report_content import LesionReport, ReportContent
from engine.writeback.segmentation import MANUFACTURER, TYPE2_COPIED

_LO_MAX = 64


def build_report(
    content: ReportContent,
    *,
    t1c_datasets: Sequence[Any],
    segmentation: Dataset,
    prior_evidence: Sequence[Dataset] = (),
    series_uid: str,
    sop_instance_uid: str,
    series_number: int,
    device_uid: str,
) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 report of ``content``; ``t1c_datasets``: the T1c headers (pixels not needed)."""
    if not t1c_datasets:
        msg = "Argument 't1c_datasets' must hold the T1c instances the report measures on"
        raise ValueError(msg)
    frame_of_reference = str(t1c_datasets[0].FrameOfReferenceUID)
    time_point = _time_point(content)
    algorithm = hd.sr.AlgorithmIdentification(
        name=content.model_name[:_LO_MAX], version=content.model_version[:_LO_MAX],
        parameters=[f"weights_sha256={content.weights_sha256}"],
    )
    headers = _headers(t1c_datasets)
    # lesions first: a viewer opening the report (OHIF) shows its first group's image
    groups: list[Any] = [_lesion_group(content, lesion, headers, frame_of_reference, time_point, algorithm)
                         for lesion in content.lesions if lesion.d1_line is not None]
    groups += [_label_group(content, name, ml, segmentation, time_point, algorithm)
               for name, ml in content.volumes_ml]
    rano = _rano_group(content, time_point)
    if rano is not None:
        groups.append(rano)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=device_uid, name="GlioWatch", manufacturer_name=MANUFACTURER,
            model_name=MANUFACTURER),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=rc.PROCEDURE_REPORTED,
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    report_dataset = hd.sr.Comprehensive3DSR(
        evidence=[*headers, segmentation, *prior_evidence],
        content=report,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="GlioWatch RANO report",
        software_versions=engine.__version__,
    )
    report_dataset.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: reasons quote "mm²", "≥"
    return report_dataset


def _headers(datasets: Sequence[Any]) -> list[Dataset]:
    out = []
    for ds in datasets:
        copy = Dataset()
        for element in ds:
            if element.keyword != "PixelData":
                copy.add(element)
        for keyword in TYPE2_COPIED:  # type 2 in the SR, copied from the evidence: empty when absent
            if keyword not in copy:
                setattr(copy, keyword, "")
        out.append(copy)
    return out


def _time_point(content: ReportContent) -> hd.sr.TimePointContext:
    offset = None
    if content.days_since_rt_end is not None:
        offset = hd.sr.LongitudinalTemporalOffsetFromEvent(
            value=content.days_since_rt_end, unit=rc.DAYS, event_type=rc.RT_END)
    return hd.sr.TimePointContext(
        time_point=f"TP{content.timepoint}",
        time_point_type=rc.TIME_POINT_BASELINE if content.is_baseline else rc.TIME_POINT_POSTTREATMENT,
        time_point_order=content.timepoint,
        subject_time_point_identifier=f"{content.patient_key} TP{content.timepoint}",
        temporal_offset_from_event=offset,
    )


def _label_group(content: ReportContent, name: str, ml: float, segmentation: Dataset,
                 time_point: hd.sr.TimePointContext,
                 algorithm: hd.sr.AlgorithmIdentification) -> Any:
    segment = hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID, sop_instance_uid=segmentation.SOPInstanceUID,
        segment_number=int(Label[name]),
        source_series=hd.sr.SourceSeriesForSegmentation(
            segmentation.ReferencedSeriesSequence[0].SeriesInstanceUID),
    )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=rc.tracking_uid(content.patient_key, f"label/{name}"), identifier=name),
        referenced_segment=segment,
        time_point_context=time_point,
        finding_type=codes.SCT.MorphologicallyAbnormalStructure,
        algorithm_id=algorithm,
        measurements=[hd.sr.Measurement(name=rc.VOLUME, value=float(ml), unit=rc.ML)],
    )


def _lesion_group(content: ReportContent, lesion: LesionReport, sources: Sequence[Dataset],
                  frame_of_reference: str, time_point: hd.sr.TimePointContext,
                  algorithm: hd.sr.AlgorithmIdentification) -> Any:
    if lesion.track_id is not None:
        uid = rc.tracking_uid(content.patient_key, f"lesion/{lesion.track_id}")
        identifier = f"Lesion {lesion.track_id}"
    else:
        uid = rc.tracking_uid(content.patient_key, f"study/{content.study_uid}/lesion/{lesion.lesion_index}")
        identifier = f"Untracked lesion {lesion.lesion_index} of TP{content.timepoint}"

    measurements = [hd.sr.Measurement(name=rc.LONG_AXIS, value=lesion.d1_mm, unit=rc.MM,
                                      referenced_coordinates=_line_coordinates(lesion.d1_line, sources,
                                                                               frame_of_reference))]
    if lesion.d2_line is not None:
        measurements.append(hd.sr.Measurement(
            name=rc.SHORT_AXIS, value=lesion.d2_mm, unit=rc.MM,
            referenced_coordinates=_line_coordinates(lesion.d2_line, sources, frame_of_reference)))
    measurements += [hd.sr.Measurement(name=rc.PRODUCT, value=lesion.product_mm2, unit=rc.MM2),
                     hd.sr.Measurement(name=rc.VOLUME, value=lesion.volume_ml, unit=rc.ML)]
    flags = [(rc.MEASURABLE, lesion.measurable), (rc.TARGET_LESION, lesion.is_target),
             (rc.NEW_LESION, lesion.is_new)]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=uid, identifier=identifier),
        time_point_context=time_point,
        finding_type=rc.ENHANCING_LESION,
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name, rc.YES if value else rc.NO)
                                 for name, value in flags],
    )


def _line_coordinates(points: Any, sources: Sequence[Dataset], frame_of_reference: str) -> list[Any]:
    """The line as SCOORD (pixel coordinates on the T1c image it lies on, what viewers such as
    OHIF draw) when it lies within half a slice of one image, then always as SCOORD3D (patient
    coordinates, LPS mm, in the T1c's frame of reference)."""
    lps = np.asarray(points, dtype=float)
    out: list[Any] = []
    image = _image_under(lps, sources)
    if image is not None:
        ds, pixels = image
        out.append(hd.sr.CoordinatesForMeasurement(
            graphic_type="POLYLINE", graphic_data=pixels,
            source_image=hd.sr.SourceImageForRegion.from_source_image(ds)))
    out.append(hd.sr.CoordinatesForMeasurement3D(graphic_type="POLYLINE", graphic_data=lps,
                                                 frame_of_reference_uid=frame_of_reference))
    return out


def _image_under(lps: np.ndarray, sources: Sequence[Dataset]) -> tuple[Dataset, np.ndarray] | None:
    """The single-frame image whose plane holds ``lps`` (within half its slice thickness), and
    the points in its pixel coordinates (column, row; the top-left pixel's centre is 0.5, 0.5)."""
    best, best_distance = None, np.inf
    for ds in sources:
        if "ImagePositionPatient" not in ds or int(ds.get("NumberOfFrames", 1) or 1) > 1:
            continue
        origin = np.array([float(v) for v in ds.ImagePositionPatient])
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        row_dir, col_dir = orientation[:3], orientation[3:]
        distance = float(np.max(np.abs((lps - origin) @ np.cross(row_dir, col_dir))))
        if distance < best_distance:
            best, best_distance = (ds, origin, row_dir, col_dir), distance
    if best is None:
        return None
    ds, origin, row_dir, col_dir = best
    thickness = float(ds.get("SliceThickness") or 1.0)
    if best_distance > thickness / 2:
        return None
    spacing_rows, spacing_columns = (float(v) for v in ds.PixelSpacing)
    columns = (lps - origin) @ row_dir / spacing_columns + 0.5
    rows = (lps - origin) @ col_dir / spacing_rows + 0.5
    return ds, np.stack([columns, rows], axis=1)


def _rano_group(content: ReportContent, time_point: hd.sr.TimePointContext) -> Any:
    response, psp = content.response, content.psp
    if response is None:
        return None
    measurements = []
    for name, value, unit in ((rc.SPD, response.burden, rc.MM2),
                              (rc.CHANGE_VS_BASELINE, _percent(response.change_vs_baseline), rc.PERCENT),
                              (rc.CHANGE_VS_NADIR, _percent(response.change_vs_nadir), rc.PERCENT)):
        if value is not None and np.isfinite(value):
            measurements.append(hd.sr.Measurement(name=name, value=float(value), unit=unit))
    if psp is not None:
        method = rc.method_code(psp.model)
        measurements += [hd.sr.Measurement(name=n, value=float(v), unit=rc.RATIO, method=method)
                         for n, v in ((rc.PROBABILITY, psp.probability), (rc.PSP_LOW, psp.low),
                                      (rc.PSP_HIGH, psp.high))]
    for fit in content.growth:
        if not fit.evaluable:
            continue
        method = rc.method_code(f"{fit.model} fit of {fit.label} volume since nadir")
        for name, value, unit in ((rc.VOLUME_DOUBLING_TIME, fit.vdt_days, rc.DAYS),
                                  (rc.GROWTH_RATE, fit.sgr_per_day, rc.PER_DAY)):
            if value is not None and np.isfinite(value):
                measurements.append(hd.sr.Measurement(
                    name=name, value=float(value), unit=unit, method=method,
                    finding_sites=[hd.sr.FindingSite(_label_site(fit.label))]))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=rc.tracking_uid(content.patient_key, "rano"), identifier="RANO assessment"),
        time_point_context=time_point,
        finding_type=rc.RANO_ASSESSMENT,
        method=rc.method_code(response.criteria),
        measurements=measurements,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(rc.RESPONSE, rc.response_code(response.category)),
            hd.sr.QualitativeEvaluation(rc.FINAL_RESPONSE, rc.response_code(response.final_category)),
        ],
    )
    for text in (response.reason, response.final_reason):
        if text:
            group[0].ContentSequence.append(hd.sr.TextContentItem(
                name=rc.COMMENT, value=text[:1024],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * float(fraction)


def _label_site(label: str) -> Any:
    from engine.writeback.segment_codes import SEGMENT_CODINGS

    return next(c.property_type for c in SEGMENT_CODINGS if c.label.name == label)
