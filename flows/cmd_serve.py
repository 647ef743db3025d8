"""`gliowatch serve`: the stream as a long-running service.

A loop that polls Orthanc, runs a Prefect flow per cycle (ingest, per-study processing on the
configured task runner with a bound on concurrent model work, board actions, alert delivery and
escalation, snapshot) until stopped; retryable failures (archive down) are logged and retried.
Health and lag: `gliowatch status` and the dashboard's stream page.
"""

from __future__ import annotations

import argparse

from engine.settings import Settings
from flows.prefect_env import configure_prefect


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the stream as a long-running service")
    p.add_argument("--max-cycles", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_prefect(settings)
    from flows.service import LoopOptions, run_loop

    print(f"GlioWatch service: watching {settings.orthanc.url} every {settings.watcher.poll_interval_s:g} s, "
          f"store {settings.db_path}, task runner {settings.task_runner}", flush=True)
    return run_loop(settings, LoopOptions(max_cycles=args.max_cycles))
