"""What one study's structured report says: plain values, read from the store by the write-back
step (:mod:`engine.writeback.step`) and turned into DICOM by :mod:`engine.writeback.report`.

Coordinates here are already DICOM patient coordinates (LPS+ mm) in the frame of reference of
the study's own T1c series. :func:`content_digest` is what decides whether a new report must be
written: the same content gives the same digest, whatever the time.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date

Point = tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class LesionReport:
    """One ET lesion of the study, as measured and tracked by the assessment."""

    lesion_index: int  # its component number in this measurement
    track_id: int | None  # the baseline lesion it continues (None: untracked, e.g. new)
    volume_ml: float
    d1_mm: float
    d2_mm: float
    product_mm2: float
    measurable: bool
    is_target: bool
    is_new: bool
    d1_line: tuple[Point, Point] | None = None  # LPS mm on the T1c slice
    d2_line: tuple[Point, Point] | None = None


@dataclass(frozen=True, slots=True)
class GrowthReport:
    label: str  # ET, SNFH
    model: str  # exponential, gompertz
    evaluable: bool
    reason: str
    vdt_days: float | None
    sgr_per_day: float | None


@dataclass(frozen=True, slots=True)
class ResponseReport:
    category: str  # engine.types.Response value, as called on the scan date
    final_category: str
    reason: str
    final_reason: str | None
    criteria: str  # e.g. "RANO 2.0, criteria v1"
    burden: float | None  # SPD mm² (2d) or ET mL (3d)
    change_vs_baseline: float | None  # fraction
    change_vs_nadir: float | None


@dataclass(frozen=True, slots=True)
class PspReport:
    probability: float
    low: float
    high: float
    model: str  # what the estimate is ('literature-informed prior ...')


@dataclass(frozen=True, slots=True)
class ReportContent:
    """Everything one report states about one study."""

    patient_key: str
    study_uid: str
    scan_date: date | None
    timepoint: int  # 1-based order among the patient's assessed studies
    is_baseline: bool
    days_since_rt_end: int | None  # None: end of radiotherapy not recorded
    volumes_ml: tuple[tuple[str, float], ...]  # (label name, mL) for NETC, SNFH, ET, RC
    lesions: tuple[LesionReport, ...]
    response: ResponseReport | None
    psp: PspReport | None
    growth: tuple[GrowthReport, ...]
    model_name: str
    model_version: str
    weights_sha256: str
    prior_study_uids: tuple[str, ...] = ()  # the earlier studies the assessment compared with


def content_digest(content: ReportContent, *, segmentation_uid: str) -> str:
    """SHA-256 of the report's content and the SEG it references (canonical JSON)."""
    data = {"content": asdict(content), "segmentation": segmentation_uid}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
