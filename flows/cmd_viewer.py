"""`gliowatch viewer [--port N]`: serve the OHIF viewer on loopback over Orthanc's DICOMweb.

The viewer (``@ohif/app``, installed by ``make viewer``) reads Orthanc through the server's
same-origin proxy, which adds Orthanc's login server-side (``engine.viewer``). The dashboard
links each study to ``[viewer] host/port`` (``/viewer?StudyInstanceUIDs=...``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from engine.settings import PROJECT_ROOT, Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("viewer", help="serve the OHIF viewer on loopback over Orthanc's DICOMweb")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: [viewer] port)")
    p.set_defaults(handler=run)


def viewer_config(settings: Settings) -> Any:
    from engine.orthanc_server import DICOMWEB_ROOT, resolve_password
    from engine.viewer import ViewerConfig
    from flows.runtime import secrets_dir

    dist = Path(settings.viewer.dist_dir)
    return ViewerConfig(dist_dir=dist if dist.is_absolute() else PROJECT_ROOT / dist,
                        orthanc_url=settings.orthanc.url, username=settings.orthanc.username,
                        password=resolve_password(settings.orthanc, secrets_dir(settings)),
                        dicomweb_root=DICOMWEB_ROOT)


def start_viewer(settings: Settings) -> Any:
    """Serve the viewer in a background thread (the demo); returns the server (``shutdown()``)."""
    from engine.viewer import make_server, serve_in_thread

    server = make_server(viewer_config(settings), host=settings.viewer.host, port=settings.viewer.port)
    serve_in_thread(server)
    return server


def start_viewer_if_installed(settings: Settings) -> Any:
    """The demo's viewer: started and announced when OHIF is installed, else a hint; the server
    or None. It serves from a daemon thread, so it ends with the demo process."""
    from engine.errors import GlioWatchError

    try:
        server = start_viewer(settings)
    except (GlioWatchError, OSError) as exc:
        print(f"      viewer not started: {getattr(exc, 'reason', exc)}")
        return None
    print(f"      DICOM viewer (OHIF, SEG + RANO report): {settings.viewer.base_url}/")
    return server


def run(args: argparse.Namespace, settings: Settings) -> int:
    from engine.viewer import make_server

    if args.port:
        settings = dataclasses.replace(settings, viewer=dataclasses.replace(settings.viewer, port=args.port))
    server = make_server(viewer_config(settings), host=settings.viewer.host, port=settings.viewer.port)
    print(f"OHIF viewer: {settings.viewer.base_url}/  (Orthanc {settings.orthanc.url}; Ctrl-C stops it)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 130
    finally:
        server.server_close()
    return 0
