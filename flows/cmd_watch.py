"""`gliowatch watch [--once]`: poll the archive and ingest every stable study."""

from __future__ import annotations

import argparse
import logging
import time

from engine.errors import GlioWatchError
from engine.settings import Settings
from flows.prefect_env import configure_prefect

log = logging.getLogger("gliowatch.watch")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("watch", help="watch the archive and ingest stable studies")
    p.add_argument("--once", action="store_true", help="drain the change feed once, reconcile, exit")
    p.add_argument("--max-cycles", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_prefect(settings)
    from flows.runtime import build_runtime
    from flows.watch import watch_cycle

    rt = build_runtime(settings)
    cycles = 0
    try:
        while True:
            reconcile = cycles % max(settings.watcher.reconcile_every, 1) == 0
            try:
                report = watch_cycle(rt, reconcile=reconcile or args.once)
                print(report.summary(), flush=True)
            except GlioWatchError as exc:
                if not exc.retryable or args.once:
                    raise
                log.warning("cycle failed, will retry: %s", exc.reason)
            cycles += 1
            if args.once or (args.max_cycles and cycles >= args.max_cycles):
                return 0
            time.sleep(settings.watcher.poll_interval_s)
    finally:
        rt.close()
