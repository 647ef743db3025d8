"""The OHIF viewer on loopback: its built ``dist/`` served as static files, a generated
``app-config.js``, and a read-only same-origin proxy to Orthanc's DICOMweb root.

The page never holds Orthanc's credentials: the browser asks ``/dicom-web/...`` of this server,
which adds the login server-side and forwards GET/HEAD only (no STOW, no delete through the
viewer). Any other path that is not a file of ``dist/`` gets ``index.html`` (OHIF routes in the
browser: ``/viewer?StudyInstanceUIDs=...``). Standard library HTTP server plus ``requests``.

OHIF itself is ``@ohif/app`` (pinned, installed by ``make viewer`` into an ignored folder):
nothing of it is vendored in the repository.
"""

from __future__ import annotations

import mimetypes
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests

from engine.errors import ConfigError

DICOMWEB_PATH = "/dicom-web/"
_FORWARDED_HEADERS = ("Accept", "Range", "If-None-Match")
_CHUNK = 1 << 16

APP_CONFIG = """/** GlioWatch: OHIF reads Orthanc through this server's same-origin DICOMweb proxy. */
window.config = {
  routerBasename: null,
  extensions: [],
  modes: [],
  customizationService: {
    // OHIF 3.13 reads every SR measurement group's first coordinate; GlioWatch's volume groups
    // (TID 1411, a SEG segment) and its RANO group (TID 1501) have none: give them an empty one,
    // so they are listed and skipped instead of stopping the viewer.
    onBeforeSRAddMeasurement: {
      $set: ({ measurement }) => (measurement.coords && measurement.coords.length
        ? measurement : Object.assign({}, measurement, { coords: [{}] })),
    },
  },
  showStudyList: true,
  maxNumberOfWebWorkers: 2,
  showWarningMessageForCrossOrigin: false,
  showCPUFallbackMessage: false,
  showLoadingIndicator: true,
  strictZSpacingForVolumeViewport: true,
  defaultDataSourceName: 'orthanc',
  dataSources: [
    {
      namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
      sourceName: 'orthanc',
      configuration: {
        friendlyName: 'GlioWatch Orthanc',
        name: 'orthanc',
        wadoUriRoot: window.location.origin + '%(root)s',
        qidoRoot: window.location.origin + '%(root)s',
        wadoRoot: window.location.origin + '%(root)s',
        qidoSupportsIncludeField: false,
        imageRendering: 'wadors',
        thumbnailRendering: 'wadors',
        enableStudyLazyLoad: true,
        supportsFuzzyMatching: false,
        supportsWildcard: true,
        omitQuotationForMultipartRequest: true,
        bulkDataURI: { enabled: true },
      },
    },
  ],
};
"""


@dataclass(frozen=True, slots=True)
class ViewerConfig:
    dist_dir: Path  # @ohif/app's dist/
    orthanc_url: str  # e.g. http://127.0.0.1:8642
    username: str
    password: str
    dicomweb_root: str = DICOMWEB_PATH  # Orthanc's DICOMweb root


def viewer_url(base_url: str, study_uid: str) -> str:
    """The viewer's page for one study.

    >>> viewer_url("http://127.0.0.1:8643", "1.2.3")
    'http://127.0.0.1:8643/viewer?StudyInstanceUIDs=1.2.3'
    """
    return f"{base_url.rstrip('/')}/viewer?StudyInstanceUIDs={quote(study_uid, safe='.')}"


def check_dist(dist_dir: Path) -> None:
    """Refuse a folder that holds no built OHIF viewer, saying how to install it."""
    if not (dist_dir / "index.html").is_file():
        raise ConfigError(
            f"No OHIF viewer at {dist_dir} (index.html missing)",
            action="Run `make viewer` (npm pack @ohif/app at the pinned version) or set "
                   "[viewer] dist_dir / GLIOWATCH_VIEWER__DIST_DIR.")


def make_server(config: ViewerConfig, *, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0: a free port); call ``serve_forever`` or :func:`serve_in_thread`."""
    check_dist(config.dist_dir)
    session = requests.Session()
    session.auth = (config.username, config.password)
    dist = config.dist_dir.resolve()
    app_config = (APP_CONFIG % {"root": DICOMWEB_PATH.rstrip("/")}).encode()
    upstream = config.orthanc_url.rstrip("/") + config.dicomweb_root.rstrip("/")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - no request lines in logs
            return

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET(head=True)

        def do_GET(self, head: bool = False) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            if path.startswith(DICOMWEB_PATH):
                self._proxy(head)
            elif path == "/app-config.js":
                self._send(200, "application/javascript", app_config, head)
            else:
                self._static(path, head)

        def _send(self, status: int, content_type: str, body: bytes, head: bool) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _static(self, path: str, head: bool) -> None:
            candidate = (dist / path.lstrip("/")).resolve()
            if not candidate.is_relative_to(dist) or not candidate.is_file():
                candidate = dist / "index.html"  # the viewer routes in the browser
            kind = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
            if candidate.suffix == ".wasm":
                kind = "application/wasm"
            self._send(200, kind, candidate.read_bytes(), head)

        def _proxy(self, head: bool) -> None:
            url = upstream + self.path[len(DICOMWEB_PATH) - 1:]
            headers = {h: self.headers[h] for h in _FORWARDED_HEADERS if self.headers.get(h)}
            try:
                answer = session.request("HEAD" if head else "GET", url, headers=headers, stream=True,
                                         timeout=60)
            except requests.RequestException:
                self._send(502, "text/plain", b"Orthanc did not answer", head)
                return
            with answer:
                self.send_response(answer.status_code)
                for name in ("Content-Type", "ETag"):
                    if answer.headers.get(name):
                        self.send_header(name, answer.headers[name])
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if head:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                for chunk in answer.iter_content(_CHUNK):
                    if chunk:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

    mimetypes.add_type("application/javascript", ".js")
    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Serve in a daemon thread (tests, the demo); stop with ``server.shutdown()``."""
    thread = threading.Thread(target=server.serve_forever, name="ohif-viewer", daemon=True)
    thread.start()
    return thread
