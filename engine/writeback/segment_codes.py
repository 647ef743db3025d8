"""How each GlioWatch label is described in a DICOM Segmentation: label, codes, colour.

The codes follow the context groups DICOM made for brain tumour segmentation (PS3.16):

* Property category, every segment: ``(49755003, SCT, "Morphologically Abnormal Structure")``,
  CID 7150 "Segmentation Property Category".
* NETC (label 1): ``(6574001, SCT, "Necrosis")``, CID 7168 "Brain Lesion Segmentation Type With
  Necrosis" (also CID 7159 "Lesion Segmentation Type").
* SNFH (label 2): ``(79654002, SCT, "Edema")``, CID 7169 "Brain Lesion Segmentation Type Without
  Necrosis" (the standard notes that it uses the generic edema concept on purpose).
* ET (label 3): ``(C113842, NCIt, "Enhancing Lesion")``, CID 7169. SNOMED CT has no concept for
  enhancing tissue on imaging and the standard takes NCIt's here; "Neoplasm" would assert tumour
  where post-treatment enhancement may be treatment effect (pseudoprogression).
* RC (label 4): ``(RC, 99GLIOWATCH, "Resection cavity")``, a private code. No context group of
  the standard (CID 7151, 7159, 7168, 7169, as shipped with pydicom 3.0.2) holds a resection
  cavity concept, and a SNOMED CT code that cannot be checked against the standard is not made
  up here. A "99" coding scheme designator is the standard's way to say "local code".

Anatomic region of every segment: ``(12738006, SCT, "Brain")``. Segment labels are the BraTS
2024 abbreviations the dashboard shows; the segment description spells them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from engine.types import Label

#: the coding scheme of GlioWatch's local codes (a "99" prefix marks a private scheme).
PRIVATE_CODING_SCHEME = "99GLIOWATCH"
RESECTION_CAVITY = Code("RC", PRIVATE_CODING_SCHEME, "Resection cavity")
CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
ANATOMIC_REGION = codes.SCT.Brain


@dataclass(frozen=True, slots=True)
class SegmentCoding:
    """What one label means in DICOM terms."""

    label: Label
    description: str
    property_type: Code
    display_rgb: tuple[int, int, int]  # a viewer's default colour (BraTS-like palette)

    @property
    def segment_number(self) -> int:
        """Segment numbers are the label values (1..4), so a label map reads the same."""
        return int(self.label)


SEGMENT_CODINGS: tuple[SegmentCoding, ...] = (
    SegmentCoding(Label.NETC, "Non-enhancing tumour core (BraTS label 1)",
                  codes.SCT.Necrosis, (220, 40, 40)),
    SegmentCoding(Label.SNFH, "Surrounding non-enhancing FLAIR hyperintensity (BraTS label 2)",
                  codes.SCT.Edema, (60, 200, 60)),
    SegmentCoding(Label.ET, "Enhancing tissue (BraTS label 3)",
                  codes.NCIt.EnhancingLesion, (250, 220, 40)),
    SegmentCoding(Label.RC, "Resection cavity (BraTS label 4)",
                  RESECTION_CAVITY, (60, 120, 240)),
)  # fmt: skip


def segment_descriptions(
    algorithm: hd.AlgorithmIdentificationSequence,
) -> list[hd.seg.SegmentDescription]:
    """The four segment descriptions, numbered 1..4 in label order, made by ``algorithm``."""
    descriptions = []
    for coding in SEGMENT_CODINGS:
        item = hd.seg.SegmentDescription(
            segment_number=coding.segment_number,
            segment_label=coding.label.name,
            segmented_property_category=CATEGORY,
            segmented_property_type=coding.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[ANATOMIC_REGION],
            display_color=hd.color.CIELabColor.from_rgb(*coding.display_rgb),
        )
        item.SegmentDescription = coding.description  # type 3: the label in plain words
        descriptions.append(item)
    return descriptions
