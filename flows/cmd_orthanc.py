"""`gliowatch orthanc start|stop|status`: the project's own Orthanc."""

from __future__ import annotations

import argparse

from engine import orthanc_server
from engine.settings import Settings
from flows.runtime import secrets_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("orthanc", help="start, stop or query the project's Orthanc")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(handler=run)


def paths(settings: Settings) -> orthanc_server.OrthancPaths:
    return orthanc_server.OrthancPaths(settings.orthanc_dir)


def run(args: argparse.Namespace, settings: Settings) -> int:
    password = orthanc_server.resolve_password(settings.orthanc, secrets_dir(settings))
    p = paths(settings)
    if args.action == "start":
        pid = orthanc_server.start(settings.orthanc, p, password=password)
        print(f"Orthanc running (pid {pid}) at {settings.orthanc.url}, user '{settings.orthanc.username}'"
              f", data in {p.storage}")
        return 0
    if args.action == "stop":
        stopped = orthanc_server.stop(p)
        print("Orthanc stopped" if stopped else "Orthanc was not running")
        return 0
    st = orthanc_server.status(settings.orthanc, p, password=password)
    if st.running:
        print(f"Orthanc {st.version} running (pid {st.pid}) at {st.url}: {st.studies} studies")
        return 0
    print(f"Orthanc is not running at {st.url}")
    return 3
