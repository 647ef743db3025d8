"""The multipart reader behind series-at-once ingest: parts come out whole however the stream is
cut, with or without Content-Length, and a stream cut short is an archive error, not a short file."""

from __future__ import annotations

import pytest

from engine.archive.dicomweb import _boundary, split_multipart
from engine.errors import ArchiveError

BOUNDARY = b"0f3c-b0und"
PARTS = [b"DICM" + bytes(range(256)) * 3, b"\r\n--0f3c-b0un not a delimiter\r\n", b"x"]


def _body(with_length: bool) -> bytes:
    out = b"preamble\r\n"
    for part in PARTS:
        length = f"Content-Length: {len(part)}\r\n".encode() if with_length else b""
        out += b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n" + length + b"\r\n" + part + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


@pytest.mark.parametrize("with_length", [True, False])
@pytest.mark.parametrize("size", [1, 7, 64, 1 << 20])
def test_parts_whole_whatever_the_chunking(with_length: bool, size: int) -> None:
    body = _body(with_length)
    chunks = (body[i:i + size] for i in range(0, len(body), size))
    assert list(split_multipart(chunks, BOUNDARY)) == PARTS


@pytest.mark.parametrize("cut", [20, 120, -12])
def test_stream_cut_short_is_an_archive_error(cut: int) -> None:
    body = _body(True)[:cut]
    with pytest.raises(ArchiveError):
        list(split_multipart(iter([body]), BOUNDARY))


def test_part_longer_than_its_content_length_is_refused() -> None:
    body = _body(True).replace(b"Content-Length: 1\r\n", b"Content-Length: 0\r\n")
    with pytest.raises(ArchiveError, match="longer than its Content-Length"):
        list(split_multipart(iter([body]), BOUNDARY))


def test_boundary_from_content_type() -> None:
    assert _boundary('multipart/related; type="application/dicom"; boundary="ab c"') == b"ab c"
    assert _boundary("multipart/related; boundary=xyz") == b"xyz"
    with pytest.raises(ArchiveError, match="not multipart"):
        _boundary("application/json")
