"""Whole-series download from Orthanc: one DICOMweb (WADO-RS) multipart response per series, read
part by part as it streams, over a keep-alive connection pool.

``SeriesFetcher`` asks Orthanc once whether its DICOMweb plugin (Debian's ``orthanc-dicomweb``) is
loaded (``GET /plugins``). With it, ``GET {root}studies/{st}/series/{se}`` with
``Accept: multipart/related; type="application/dicom"; transfer-syntax=*`` returns every instance
of the series as stored (no transcoding), and each part is handed to the caller as soon as its
last byte has arrived, so parsing overlaps the rest of the transfer. Without the plugin it falls
back to one ``GET /instances/{id}/file`` per instance, on the same pooled session, a few at a time.

Both paths yield the instances' Part 10 bytes; what they hold is judged by the same validation
(:func:`engine.dicom.reader.datasets_from_bytes`, ``split_series_objects``, ``assemble_volume``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import wraps
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from engine.errors import ArchiveError, ArchiveUnavailableError

log = logging.getLogger(__name__)
DICOMWEB_PLUGIN_ID = "dicom-web"
DICOMWEB_ROOT = "/dicom-web/"
ACCEPT_SERIES = 'multipart/related; type="application/dicom"; transfer-syntax=*'
#: connections kept alive per Orthanc (series fetched concurrently + per-instance fallback threads)
POOL_SIZE = 16
FALLBACK_THREADS = 4
CHUNK = 1 << 20
T = TypeVar("T")


def _http_errors(func: Callable[..., T]) -> Callable[..., T]:
    """requests' exceptions as the project's (unreachable = retryable, like OrthancArchive's)."""

    @wraps(func)
    def wrapper(self: SeriesFetcher, *args: Any, **kwargs: Any) -> T:
        try:
            return func(self, *args, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ArchiveUnavailableError(
                f"Orthanc at {self.url} is not reachable",
                action="The watcher retries; check that Orthanc runs (`gliowatch orthanc status`).",
                detail=str(exc),
            ) from exc
        except requests.RequestException as exc:
            raise ArchiveError("A series download from Orthanc failed", detail=str(exc)) from exc

    return wrapper


class SeriesFetcher:
    """Downloads whole series from one Orthanc; thread-safe (one pooled session shared)."""

    def __init__(self, url: str, *, username: str, password: str, timeout_s: float = 30.0,
                 use_dicomweb: bool | None = None) -> None:
        """``use_dicomweb``: None asks Orthanc (once, on first use); False forces the per-instance
        REST path; True assumes the plugin."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.auth = (username, password)
        # Orthanc may close an idle keep-alive connection just as it is reused ("Remote end closed
        # connection without response", seen under load): GETs are idempotent, so try again on a
        # fresh connection before reporting Orthanc unreachable. A retry happens only before a
        # response has begun, never in the middle of a streamed series.
        retry = Retry(total=3, connect=3, read=2, status=0, other=0, allowed_methods=frozenset({"GET"}),
                      backoff_factor=0.2, raise_on_status=False)
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=POOL_SIZE, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._use_dicomweb = use_dicomweb
        self._lock = threading.Lock()

    @property
    def uses_dicomweb(self) -> bool:
        with self._lock:
            if self._use_dicomweb is None:
                self._use_dicomweb = self._has_plugin()
                if not self._use_dicomweb:
                    log.info("Orthanc at %s has no DICOMweb plugin: series are fetched instance by "
                             "instance (install orthanc-dicomweb for whole-series downloads)", self.url)
            return self._use_dicomweb

    @_http_errors
    def _has_plugin(self) -> bool:
        answer = self.session.get(f"{self.url}/plugins", timeout=self.timeout_s)
        _raise_for_status(answer, "list Orthanc's plugins")
        return DICOMWEB_PLUGIN_ID in answer.json()

    def series_files(self, study_uid: str, series_uid: str, instance_ids: tuple[str, ...]) -> Iterator[bytes]:
        """Every instance of a series as Part 10 bytes, yielded as each one arrives."""
        if self.uses_dicomweb and study_uid and series_uid:
            return self._wado_series(study_uid, series_uid)
        return self._per_instance(instance_ids)

    @_http_errors
    def instance_file(self, instance_id: str) -> bytes:
        answer = self.session.get(f"{self.url}/instances/{instance_id}/file", timeout=self.timeout_s)
        _raise_for_status(answer, f"download instance {instance_id}")
        return answer.content

    def _per_instance(self, instance_ids: tuple[str, ...]) -> Iterator[bytes]:
        with ThreadPoolExecutor(max_workers=FALLBACK_THREADS) as pool:
            yield from pool.map(self.instance_file, instance_ids)

    def _wado_series(self, study_uid: str, series_uid: str) -> Iterator[bytes]:
        url = f"{self.url}{DICOMWEB_ROOT}studies/{study_uid}/series/{series_uid}"
        answer = self._open(url)
        with answer:
            boundary = _boundary(answer.headers.get("Content-Type", ""))
            stream = _translated_chunks(self, answer.iter_content(CHUNK))
            yield from split_multipart(stream, boundary)

    @_http_errors
    def _open(self, url: str) -> requests.Response:
        answer = self.session.get(url, headers={"Accept": ACCEPT_SERIES}, stream=True, timeout=self.timeout_s)
        if answer.status_code == 404:
            answer.close()
            raise ArchiveError(
                "A series disappeared from Orthanc before it could be read",
                action="Nothing to do if it was deleted on purpose; the reconciliation sweep records "
                       "what is left.",
                detail=f"WADO-RS {url}: HTTP 404",
            )
        _raise_for_status(answer, "retrieve a series over DICOMweb")
        return answer

    def close(self) -> None:
        self.session.close()


def _translated_chunks(fetcher: SeriesFetcher, chunks: Iterator[bytes]) -> Iterator[bytes]:
    @_http_errors
    def next_chunk(_: SeriesFetcher) -> bytes | None:
        return next(chunks, None)

    while (chunk := next_chunk(fetcher)) is not None:
        yield chunk


def _raise_for_status(answer: requests.Response, what: str) -> None:
    if answer.status_code >= 400:
        text = answer.text[:300]
        answer.close()
        raise ArchiveError(f"Orthanc refused to {what} (HTTP {answer.status_code})", detail=text)


def _boundary(content_type: str) -> bytes:
    """The boundary of a ``multipart/related`` Content-Type (quoted or not)."""
    if not content_type.lower().startswith("multipart/"):
        raise ArchiveError("Orthanc's DICOMweb answer is not multipart", detail=f"Content-Type {content_type}")
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("ascii")
    raise ArchiveError("Orthanc's DICOMweb answer names no multipart boundary", detail=content_type)


def split_multipart(chunks: Iterator[bytes], boundary: bytes) -> Iterator[bytes]:
    """The bodies of a multipart stream, each yielded once complete (RFC 2046).

    A part with a ``Content-Length`` header is cut at that length; one without it ends at the
    next delimiter. A stream that ends inside a part raises :class:`ArchiveError`.

    >>> body = b"--b\\r\\nContent-Length: 3\\r\\n\\r\\nabc\\r\\n--b\\r\\n\\r\\nxy\\r\\n--b--\\r\\n"
    >>> list(split_multipart(iter([body[:7], body[7:]]), b"b"))
    [b'abc', b'xy']
    """
    delimiter = b"\r\n--" + boundary
    buf = bytearray()
    pos = 0  # start of unread data in buf
    source = iter(chunks)

    def more() -> bool:
        nonlocal buf, pos
        chunk = next(source, None)
        if chunk is None:
            return False
        if pos > CHUNK:  # drop what has been consumed, now and then
            del buf[:pos]
            pos = 0
        buf += chunk
        return True

    # preamble, then the first boundary line ("--boundary" may open the body without a CRLF)
    first = b"--" + boundary
    while (at := buf.find(first, pos)) < 0:
        if not more():
            raise ArchiveError("Orthanc's DICOMweb answer holds no multipart part")
    pos = at + len(first)
    while True:
        while len(buf) - pos < 2 and more():
            pass
        if buf[pos:pos + 2] == b"--":
            return  # close delimiter: no more parts
        while (end := buf.find(b"\r\n\r\n", pos)) < 0:
            if not more():
                raise ArchiveError("Orthanc's DICOMweb answer ended inside a part's headers")
        headers = bytes(buf[pos:end]).decode("latin-1").lower().split("\r\n")
        pos = end + 4
        length = next((int(h.split(":", 1)[1]) for h in headers if h.startswith("content-length:")), None)
        if length is not None:
            while len(buf) - pos < length + len(delimiter):
                if not more():
                    raise ArchiveError("Orthanc's DICOMweb answer ended inside an instance",
                                       detail=f"{len(buf) - pos} of {length} bytes received")
            if buf[pos + length:pos + length + len(delimiter)] != delimiter:
                raise ArchiveError("Orthanc's DICOMweb answer: a part is longer than its Content-Length")
            body_end = pos + length
        else:
            while (body_end := buf.find(delimiter, pos)) < 0:
                if not more():
                    raise ArchiveError("Orthanc's DICOMweb answer ended inside an instance")
        yield bytes(buf[pos:body_end])
        pos = body_end + len(delimiter)
