"""A fast read of the common case: a Part 10 instance in uncompressed little-endian encoding.

``pydicom.dcmread`` builds a Python object per element of the header (~70-200 per MR slice) and
its ``Dataset`` then costs several microseconds per attribute access; for a series downloaded
from Orthanc that was most of ingest's time. :func:`index_part10` instead walks the top-level
elements once (tag, VR, where the value lies) and returns an :class:`IndexedDataset` that converts
a value only when it is first asked for, **with pydicom's own converter**
(``convert_raw_data_element``), so every value it returns is the value and type pydicom returns.

It handles explicit and implicit VR little endian only (what scanners and Orthanc store for
uncompressed MR). Everything else is pydicom's: :func:`index_part10` returns ``None`` for any
other transfer syntax or for anything it does not expect (no ``DICM`` preamble, an element running
past the end, a malformed sequence, ...), and the caller then reads the bytes with
``pydicom.dcmread``, which accepts or refuses them as before. Within an :class:`IndexedDataset`,
whatever is not a plain value (sequences, private and ambiguous-VR elements, non-ASCII text,
``pixel_array``, any other ``Dataset`` method) is answered by a full pydicom dataset parsed from
the same bytes on first need.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import Tag
from pydicom.uid import UID

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
PIXEL_DATA_TAG = 0x7FE00010
_TRANSFER_SYNTAX_TAG = 0x00020010
#: explicit VRs with a 2-byte reserved field and a 4-byte length
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
#: VRs whose values are converted here (by pydicom's converter, without a Dataset); the others
#: (SQ, PN, AT, UN, the ambiguous "US or SS" ...) come from the full pydicom dataset
_PLAIN_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UI",
                        "UC", "UR", "UT", "US", "UL", "SS", "SL", "FL", "FD", "SV", "UV",
                        "OB", "OD", "OF", "OL", "OV", "OW"})
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "SH", "ST", "TM", "UI",
                       "UC", "UR", "UT"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
_MAX_DEPTH = 16
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<L").unpack_from
_TAG = struct.Struct("<HH").unpack_from

#: where a value lies: (VR or None for implicit VR, offset of the value, length)
Entry = tuple[str | None, int, int]


class _Unexpected(Exception):
    """Something the walk does not handle: leave the bytes to pydicom."""


def index_part10(blob: bytes) -> IndexedDataset | None:
    """The instance as an :class:`IndexedDataset`, or ``None`` to let ``pydicom.dcmread`` read it."""
    try:
        if blob[128:132] != b"DICM":
            return None
        meta: dict[int, Entry] = {}
        pos = _walk(blob, 132, len(blob), explicit=True, index=meta, group=2)
        syntax_entry = meta.get(_TRANSFER_SYNTAX_TAG)
        if syntax_entry is None:
            return None
        _, offset, length = syntax_entry
        syntax = blob[offset:offset + length].rstrip(b"\x00 ").decode("ascii")
        if syntax not in (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN):
            return None
        explicit = syntax == EXPLICIT_VR_LITTLE_ENDIAN
        index: dict[int, Entry] = {}
        _walk(blob, pos, len(blob), explicit=explicit, index=index)
    except (_Unexpected, struct.error, UnicodeDecodeError):
        return None
    dataset = IndexedDataset(blob, index, implicit=not explicit)
    dataset.file_meta = IndexedDataset(blob, meta, implicit=False, owner=dataset)
    return dataset


def index_part10_file(path: Path) -> IndexedDataset | None:
    """:func:`index_part10` of a file (only the first 132 bytes are read when it is not Part 10)."""
    with path.open("rb") as handle:
        head = handle.read(132)
        return index_part10(head + handle.read()) if head[128:132] == b"DICM" else None


class IndexedDataset:
    """A read-only stand-in for a pydicom ``Dataset`` over one instance's bytes (see the module).

    ``get``, ``in`` and attribute access by keyword give pydicom's values; anything else is
    delegated to the full dataset (``pydicom.dcmread`` of the same bytes, parsed once, on first need).
    """

    __slots__ = ("_blob", "_full", "_implicit", "_index", "_owner", "_values", "file_meta")

    def __init__(self, blob: bytes, index: dict[int, Entry], *, implicit: bool,
                 owner: IndexedDataset | None = None) -> None:
        self._blob = blob
        self._index = index
        self._implicit = implicit
        self._owner = owner  # the dataset whose file meta this is
        self._values: dict[int, Any] = {}
        self._full: Any = None

    def get(self, key: Any, default: Any = None) -> Any:
        tag = _keyword_tag(key) if isinstance(key, str) else None
        if tag is None:
            return self.full_dataset().get(key, default)
        if tag not in self._index:
            return default
        return self._value(tag)

    def __contains__(self, key: Any) -> bool:
        tag = _keyword_tag(key) if isinstance(key, str) else None
        return tag in self._index if tag is not None else key in self.full_dataset()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        tag = _keyword_tag(name)
        if tag is not None and tag in self._index:
            return self._value(tag)
        return getattr(self.full_dataset(), name)

    def __len__(self) -> int:
        return len(self._index)

    def pixel_view(self) -> memoryview | None:
        """The Pixel Data value as a view into the instance's bytes (no copy); None when absent or
        empty, like ``get("PixelData")``."""
        entry = self._index.get(PIXEL_DATA_TAG)
        if entry is None or entry[0] == "SQ" or not entry[2]:  # as get(): None when empty
            return None
        _, offset, length = entry
        return memoryview(self._blob)[offset:offset + length]

    def full_dataset(self) -> Any:
        """The pydicom dataset of the same bytes (its file meta, for the file meta)."""
        if self._owner is not None:
            return self._owner.full_dataset().file_meta
        if self._full is None:
            self._full = pydicom.dcmread(BytesIO(self._blob))
        return self._full

    def _value(self, tag: int) -> Any:
        try:
            return self._values[tag]
        except KeyError:
            pass
        vr, offset, length = self._index[tag]
        if vr == "SQ":  # a sequence (or anything of undefined length): pydicom's
            value = self._values[tag] = self.full_dataset()[tag].value
            return value
        raw = self._blob[offset:offset + length]
        if self._implicit and vr is None:
            vr = _dictionary_vr(tag)
        plain = (vr in _PLAIN_VRS and not tag >> 16 & 1  # private groups are odd
                 and not (vr in _TEXT_VRS and not raw.isascii()))
        if tag == PIXEL_DATA_TAG:
            value = raw if length else None  # OB or OW: the bytes as they are; empty: None
        elif plain and vr == "US" and length == 2:  # what pydicom's convert_numbers returns
            value = _U16(raw)[0]
        elif plain and vr == "UI" and b"\\" not in raw and length:  # pydicom's convert_UI
            value = UID(raw.decode("ascii").rstrip("\0 "))
        elif plain:
            element = RawDataElement(Tag(tag), None if self._implicit else vr, length, raw, offset,
                                     self._implicit, True)
            value = convert_raw_data_element(element).value
        else:
            value = self.full_dataset()[tag].value
        self._values[tag] = value
        return value


@lru_cache(maxsize=4096)
def _keyword_tag(keyword: str) -> int | None:
    return tag_for_keyword(keyword)


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _walk(blob: bytes, pos: int, end: int, *, explicit: bool, index: dict[int, Entry],
          group: int | None = None) -> int:
    """Index the top-level elements from ``pos`` to ``end`` (with ``group``: while the elements
    are of that group) and return where the walk stopped. An undefined-length sequence is
    skipped and indexed with VR ``SQ`` (its value is read by pydicom)."""
    while pos < end:
        if group is not None and _TAG(blob, pos)[0] != group:
            return pos
        tag, vr, length, start = _element_header(blob, pos, explicit)
        pos = _element_end(blob, start, end, vr, length, explicit, 0)
        index[tag] = ("SQ", start, pos - start) if length == _UNDEFINED else (vr, start, length)
    return pos


def _element_header(blob: bytes, pos: int, explicit: bool) -> tuple[int, str | None, int, int]:
    """(tag, VR or None in implicit VR, length, where the value starts) of the element at ``pos``."""
    tag_group, tag_element = _TAG(blob, pos)
    if tag_group == 0xFFFE:
        raise _Unexpected("a delimiter where an element was expected")
    tag = tag_group << 16 | tag_element
    if not explicit:
        return tag, None, _U32(blob, pos + 4)[0], pos + 8
    vr_bytes = blob[pos + 4:pos + 6]
    if not (vr_bytes.isalpha() and vr_bytes.isupper()):
        raise _Unexpected("not a VR")
    vr = vr_bytes.decode("ascii")
    if vr in _LONG_VRS:
        return tag, vr, _U32(blob, pos + 8)[0], pos + 12
    return tag, vr, _U16(blob, pos + 6)[0], pos + 8


def _element_end(blob: bytes, start: int, end: int, vr: str | None, length: int, explicit: bool,
                 depth: int) -> int:
    """Where the element whose value starts at ``start`` ends."""
    if length != _UNDEFINED:
        if start + length > end:
            raise _Unexpected("an element runs past the end")
        return start + length
    if vr not in (None, "SQ"):  # encapsulated pixel data or UN sequences: left to pydicom
        raise _Unexpected("undefined length outside a sequence")
    if depth >= _MAX_DEPTH:
        raise _Unexpected("sequences nested too deep")
    pos = start
    while pos + 8 <= end:  # items, then the sequence delimiter
        tag_group, tag_element = _TAG(blob, pos)
        tag = tag_group << 16 | tag_element
        (item_length,) = _U32(blob, pos + 4)
        pos += 8
        if tag == _SEQUENCE_END:
            return pos
        if tag != _ITEM:
            raise _Unexpected(f"{tag:08X} in a sequence")
        if item_length != _UNDEFINED:
            if pos + item_length > end:
                raise _Unexpected("an item runs past the end")
            pos += item_length
            continue
        while _TAG(blob, pos) != (0xFFFE, 0xE00D):  # the item's elements, then its delimiter
            _, item_vr, element_length, value_start = _element_header(blob, pos, explicit)
            pos = _element_end(blob, value_start, end, item_vr, element_length, explicit, depth + 1)
        pos += 8
    raise _Unexpected("a sequence runs past the end")
