"""The ``gliowatch`` command line.

Each sub-command lives in its own module ``flows/cmd_<name>.py`` exposing
``add_parser(subparsers)`` and ``run(args, settings) -> int``. Modules keep heavy imports
(torch, monai, prefect) inside ``run`` so ``gliowatch --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from engine.errors import GlioWatchError
from engine.memory import keep_freed_memory
from engine.settings import load_settings

#: sub-command module names, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "orthanc",
    "synth",
    "convert",
    "watch",
    "serve",
    "backfill",
    "rescore",
    "status",
    "segment",
    "models",
    "train",
    "calibrate",
    "evaluate",
    "register",
    "assess",
    "events",
    "alerts",
    "dashboard",
    "viewer",
    "export",
    "users",
    "demo",
)

log = logging.getLogger("gliowatch")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gliowatch",
        description="Longitudinal surveillance of glioma MRI follow-up.",
    )
    parser.add_argument("--config", help="settings TOML (default: config/gliowatch.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = _command_module(name)
        if module is not None:
            module.add_parser(subparsers)
    return parser


def _command_module(name: str):  # noqa: ANN202 - a module
    try:
        return importlib.import_module(f"flows.cmd_{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"flows.cmd_{name}":
            return None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings(args.config)
        # before any thread starts: a thread that exists already keeps its own malloc arena
        keep_freed_memory(settings.keep_freed_memory)
        logging.basicConfig(
            level=getattr(logging, settings.log_level.upper(), logging.INFO),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        for noisy in ("httpx", "urllib3", "distributed", "asyncio", "orthanc_api_client", "highdicom"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        return int(args.handler(args, settings))
    except GlioWatchError as exc:
        print(f"gliowatch: {exc}", file=sys.stderr)
        if exc.detail and args.verbose:
            print(f"  detail: {exc.detail}", file=sys.stderr)
        if args.verbose:
            log.exception("failed")
        return 1
    except KeyboardInterrupt:
        print("gliowatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
