"""The concepts of GlioWatch's structured report (TID 1500) and the stable tracking UIDs.

Standard codes where DICOM / SNOMED CT / NCIt hold the concept (long and short axis, volume,
probability, the four RECIST-like response categories of NCIt, time point types of CID 6146);
local codes of the ``99GLIOWATCH`` scheme (:data:`engine.writeback.segment_codes.PRIVATE_CODING_SCHEME`)
for what the standard does not name: the RANO sum of products, the response categories RANO adds
(preliminary progression, pseudoprogression, ...), the pseudoprogression prior, the growth fits and
the end of radiotherapy as the event of the temporal offset (CID 280 knows only "Baseline" and
"Enrollment").

Tracking UIDs are derived, not generated: ``2.25.<uuid5>`` of the patient key and what is tracked
(a lesion's track id, a label, the RANO assessment), so every report of the same patient names the
same lesion with the same UID without remembering anything (:func:`tracking_uid`).
"""

from __future__ import annotations

import uuid

import highdicom as hd
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from engine.writeback.segment_codes import PRIVATE_CODING_SCHEME as LOCAL

#: the uuid5 namespace of GlioWatch's tracking UIDs (fixed forever: changing it breaks tracking)
TRACKING_NAMESPACE = uuid.UUID("6f1f5a52-3c0e-5b8e-9a51-61e0c1a7a0b3")

PROCEDURE_REPORTED = Code("24590-2", "LN", "MR Brain")
ENHANCING_LESION = codes.NCIt.EnhancingLesion
LONG_AXIS = codes.SCT.LongAxis
SHORT_AXIS = codes.SCT.ShortAxis
VOLUME = codes.SCT.Volume
PROBABILITY = codes.DCM.Probability
COMMENT = codes.DCM.Comment
TIME_POINT_BASELINE = codes.cid6146.Baseline
TIME_POINT_POSTTREATMENT = codes.cid6146.Posttreatment

PRODUCT = Code("BDP", LOCAL, "Bidimensional product")
SPD = Code("SPD", LOCAL, "Sum of products of perpendicular diameters")
CHANGE_VS_BASELINE = Code("CHG-BASE", LOCAL, "Change from baseline")
CHANGE_VS_NADIR = Code("CHG-NADIR", LOCAL, "Change from nadir")
PSP_LOW = Code("PSP-LOW", LOCAL, "Pseudoprogression probability, lower bound")
PSP_HIGH = Code("PSP-HIGH", LOCAL, "Pseudoprogression probability, upper bound")
PSP_PRIOR = Code("PSP-PRIOR", LOCAL, "Pseudoprogression prior (literature-informed)")
VOLUME_DOUBLING_TIME = Code("VDT", LOCAL, "Volume doubling time")
GROWTH_RATE = Code("SGR", LOCAL, "Specific growth rate")
RESPONSE = Code("RANO-RESP", LOCAL, "RANO response on the scan date")
FINAL_RESPONSE = Code("RANO-FINAL", LOCAL, "RANO response once later scans are known")
TARGET_LESION = Code("TARGET", LOCAL, "Target lesion")
MEASURABLE = Code("MEASURABLE", LOCAL, "Measurable lesion")
NEW_LESION = Code("NEW", LOCAL, "New lesion")
RT_END = Code("RT-END", LOCAL, "End of radiotherapy")
RANO_ASSESSMENT = Code("RANO", LOCAL, "RANO assessment")
YES, NO = codes.SCT.Yes, codes.SCT.No

MM = codes.UCUM.Millimeter
MM2 = Code("mm2", "UCUM", "square millimeter")
ML = Code("ml", "UCUM", "milliliter")
PERCENT = Code("%", "UCUM", "percent")
DAYS = Code("d", "UCUM", "day")
PER_DAY = Code("/d", "UCUM", "per day")
RATIO = Code("1", "UCUM", "no units")

#: the response categories: NCIt for the four RECIST-like ones, local codes for RANO's others
_RESPONSE_CODES = {
    "CR": Code("C4870", "NCIt", "Complete Response"),
    "PR": Code("C18058", "NCIt", "Partial Response"),
    "SD": Code("C18213", "NCIt", "Stable Disease"),
    "PD": Code("C35571", "NCIt", "Progressive Disease"),
}
_RESPONSE_MEANINGS = {
    "PRE_BASELINE": "Before the RANO baseline", "BASELINE": "RANO baseline", "MR": "Minor response",
    "STEROID_WATCH": "Stable, corticosteroid dose to watch", "PRELIM_PD": "Preliminary progression",
    "PSEUDOPROGRESSION": "Pseudoprogression", "DISCORDANT": "2D and volumetric calls disagree",
    "NE": "Not evaluable",
}  # fmt: skip


def response_code(category: str) -> Code:
    """The coded value of a stored response category (``engine.types.Response`` value).

    >>> response_code("PD").value, response_code("PRELIM_PD").meaning
    ('C35571', 'Preliminary progression')
    """
    if category in _RESPONSE_CODES:
        return _RESPONSE_CODES[category]
    if category not in _RESPONSE_MEANINGS:
        msg = f"Argument 'category' must be a stored response category, got {category!r}"
        raise ValueError(msg)
    return Code(category, LOCAL, _RESPONSE_MEANINGS[category])


def tracking_uid(patient_key: str, tracked: str) -> hd.UID:
    """The same UID for the same patient and tracked thing, in every report (``2.25`` form).

    >>> tracking_uid("P-0001", "lesion/1") == tracking_uid("P-0001", "lesion/1")
    True
    >>> str(tracking_uid("P-0001", "lesion/1")).startswith("2.25.")
    True
    """
    return hd.UID.from_uuid(str(uuid.uuid5(TRACKING_NAMESPACE, f"{patient_key}/{tracked}")))


def method_code(text: str) -> Code:
    """A local code naming a method in words (a DICOM code meaning holds at most 64 characters)."""
    digest = uuid.uuid5(TRACKING_NAMESPACE, text).hex[:12]
    return Code(f"M-{digest}", LOCAL, text[:64])
