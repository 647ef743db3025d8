"""Which instances of a series are images to stack, and which are other objects to leave out.

A series or study as a scanner or PACS sends it may hold, beside its images, objects that are
not images of the patient: Raw Data (Philips puts one in the image series), presentation states,
structured reports, key-object selections, segmentations, registrations, screenshots (secondary
capture without a place in space), and the objects GlioWatch itself writes back (SEG, SR). Such
an object never makes the images unreadable: it is left out and reported (its SOP class and how
many instances), by :func:`split_series_objects`, the one place that decides, used by both the
folder reader and the archive ingest.

The decision rests on the SOP Class UID first, then on Modality and the presence of pixel data
for classes it does not list (private classes, e.g. Philips' "MR Series Data Storage"). An
instance of an image class (MR, CT and their enhanced forms) is always an image, even when it
is broken (no pixel data): that is a refusal with its reason, never a silent omission.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID

from engine.dicom.pixels import has_pixel_data
from engine.dicom.reader import READ_ERRORS, text_value

_STORAGE = "1.2.840.10008.5.1.4.1.1."
#: image classes: an instance of these is an image even when it is broken.
IMAGE_SOP_CLASSES = frozenset(
    _STORAGE + suffix for suffix in ("2", "2.1", "2.2", "4", "4.1", "4.3", "4.4")
)
#: classes that are never an image to stack (Raw Data, SEG and label map SEG, registrations,
#: RWV mapping, MR spectroscopy, RT structure set / plan, hanging protocols).
NON_IMAGE_SOP_CLASSES = frozenset(
    {
        *(_STORAGE + suffix for suffix in ("66", "66.1", "66.3", "66.4", "66.5", "66.6", "66.7",
                                           "67", "4.2", "481.3", "481.5", "481.11")),
        "1.2.840.10008.5.1.4.38.1",
    }
)  # fmt: skip
#: families of non-image classes: SR and key-object selection (88), presentation states (11),
#: encapsulated documents (104), waveforms (9).
NON_IMAGE_SOP_CLASS_PREFIXES = tuple(_STORAGE + f"{family}." for family in (88, 11, 104, 9))
#: secondary capture: a screenshot unless it says where it lies in the patient.
SECONDARY_CAPTURE_SOP_CLASSES = frozenset(
    _STORAGE + suffix for suffix in ("7", "7.1", "7.2", "7.3", "7.4")
)
#: modalities of non-image objects, for instances whose SOP class is not listed above.
NON_IMAGE_MODALITIES = frozenset(
    {"SR", "PR", "KO", "SEG", "REG", "RWV", "DOC", "PLAN", "RTSTRUCT", "RTPLAN", "RTRECORD"}
)


@dataclass(frozen=True, slots=True)
class IgnoredObjects:
    """Instances of one non-image SOP class left out of one series."""

    series_uid: str
    series_description: str
    sop_class_uid: str
    sop_class_name: str  # the DICOM name, or the UID for a private class
    instance_count: int

    def describe(self) -> str:
        """``1 Raw Data Storage instance``, ``2 Basic Text SR Storage instances``."""
        plural = "" if self.instance_count == 1 else "s"
        return f"{self.instance_count} {self.sop_class_name} instance{plural}"


@dataclass(frozen=True, slots=True)
class SeriesObjects:
    """The instances of one series: the images to stack, and what was left out."""

    images: tuple[Any, ...]
    ignored: tuple[IgnoredObjects, ...]


def non_image_class(ds: Any) -> str | None:
    """The SOP class name of a non-image object; ``None`` when ``ds`` is an image to stack."""
    sop_class = text_value(ds, "SOPClassUID")
    if sop_class in IMAGE_SOP_CLASSES:
        return None
    name = sop_class_name(sop_class)
    if sop_class in NON_IMAGE_SOP_CLASSES or sop_class.startswith(NON_IMAGE_SOP_CLASS_PREFIXES):
        return name
    if sop_class in SECONDARY_CAPTURE_SOP_CLASSES and not _has_plane_geometry(ds):
        return name
    if text_value(ds, "Modality") in NON_IMAGE_MODALITIES or not has_pixel_data(ds):
        return name
    return None


def split_series_objects(datasets: Sequence[Any]) -> SeriesObjects:
    """Separate the images of a series from its non-image objects (counted per SOP class)."""
    images: list[Any] = []
    left_out: Counter[tuple[str, str, str, str]] = Counter()
    for ds in datasets:
        kind = non_image_class(ds)
        if kind is None:
            images.append(ds)
            continue
        key = (
            text_value(ds, "SeriesInstanceUID"),
            text_value(ds, "SeriesDescription"),
            text_value(ds, "SOPClassUID"),
            kind,
        )
        left_out[key] += 1
    ignored = tuple(IgnoredObjects(*key, instance_count=n) for key, n in left_out.items())
    return SeriesObjects(images=tuple(images), ignored=ignored)


def describe_ignored(ignored: Sequence[IgnoredObjects]) -> str:
    """``1 Raw Data Storage instance, 2 Basic Text SR Storage instances`` (``""`` for none)."""
    return ", ".join(item.describe() for item in ignored)


def sop_class_name(sop_class_uid: str) -> str:
    """The DICOM name of a SOP class (``Raw Data Storage``), else its UID, else ``unknown``.

    >>> sop_class_name("1.2.840.10008.5.1.4.1.1.66")
    'Raw Data Storage'
    >>> sop_class_name("1.3.46.670589.11.0.0.12.2")
    'SOP class 1.3.46.670589.11.0.0.12.2'
    """
    if not sop_class_uid:
        return "unknown SOP class"
    name = UID(sop_class_uid).name
    return name if name != sop_class_uid else f"SOP class {sop_class_uid}"


def _has_plane_geometry(ds: Any) -> bool:
    """Whether the instance says where its pixels lie (top level or functional groups)."""
    try:
        if ds.get("ImagePositionPatient") and ds.get("ImageOrientationPatient"):
            return True
        return bool(ds.get("PerFrameFunctionalGroupsSequence"))
    except READ_ERRORS:  # a malformed element says nothing about the place in space
        return False
