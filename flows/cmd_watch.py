"""`gliowatch watch [--once]`: poll the archive and process every stable study."""

from __future__ import annotations

import argparse

from engine.settings import Settings
from flows.prefect_env import configure_prefect


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("watch", help="watch the archive and process stable studies")
    p.add_argument("--once", action="store_true", help="drain the change feed once, reconcile, exit")
    p.add_argument("--max-cycles", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_prefect(settings)
    from flows.service import LoopOptions, run_loop

    return run_loop(settings, LoopOptions(once=args.once, max_cycles=args.max_cycles))
