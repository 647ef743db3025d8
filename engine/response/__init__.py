"""RANO response (clinical-spec 8.3-8.5): pure functions, no I/O.

``target`` (8.3, quantitative), ``timepoint`` (8.4, the overall table) and ``temporal`` (8.5, the
confirmation state machine over a patient's scans) are kept apart; ``assess_patient`` is the
entry point.
"""

from engine.response.inputs import ClinicalStatus, Idh, Mgmt, PatientContext, ResponseCall, Timepoint
from engine.response.target import TargetCategory, TargetResult, target_response
from engine.response.temporal import assess_patient
from engine.response.timepoint import (
    Finding,
    FindingKind,
    SteroidStatus,
    TimepointEvidence,
    classify_timepoint,
)

__all__ = [
    "ClinicalStatus",
    "Finding",
    "FindingKind",
    "Idh",
    "Mgmt",
    "PatientContext",
    "ResponseCall",
    "SteroidStatus",
    "TargetCategory",
    "TargetResult",
    "TimepointEvidence",
    "Timepoint",
    "assess_patient",
    "classify_timepoint",
    "target_response",
]
