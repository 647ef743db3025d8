"""`gliowatch serve`: the stream as a long-running service.

Embedded (default, no Prefect server): a loop that polls Orthanc, runs a Prefect flow per cycle
(ingest, per-study processing on the configured task runner with a bound on concurrent model
work, board actions, alert delivery and escalation, snapshot) until stopped; retryable failures
(archive down) are logged and retried.

With a Prefect server (``PREFECT_API_URL``) and ``--work-pool NAME``: the cycle is registered as
a deployment on that process work pool (interval = poll interval, one run at a time), then this
process becomes a Prefect worker for the pool (``--deploy-only`` registers and returns, for sites
that run their workers elsewhere). See flows/deployment.py and docs/DEPLOYMENT.md.

Health and lag: `gliowatch status` and the dashboard's stream page.
"""

from __future__ import annotations

import argparse
import os
import sys

from engine.settings import Settings
from flows.prefect_env import configure_prefect


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the stream as a long-running service")
    p.add_argument("--max-cycles", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--work-pool", default=None,
                   help="deploy on this Prefect work pool and run its worker (needs PREFECT_API_URL)")
    p.add_argument("--deploy-only", action="store_true",
                   help="with --work-pool: register the deployment and return (workers run elsewhere)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    configure_prefect(settings)
    if args.work_pool:
        return _run_on_work_pool(args, settings)
    if args.deploy_only:
        print("gliowatch serve: --deploy-only needs --work-pool")
        return 2
    from flows.service import LoopOptions, run_loop

    print(f"GlioWatch service: watching {settings.orthanc.url} every {settings.watcher.poll_interval_s:g} s, "
          f"store {settings.db_path}, task runner {settings.task_runner}", flush=True)
    return run_loop(settings, LoopOptions(max_cycles=args.max_cycles))


def _run_on_work_pool(args: argparse.Namespace, settings: Settings) -> int:
    from flows.deployment import deploy_stream, prefect_api_url

    info = deploy_stream(settings, work_pool=args.work_pool)
    print(f"GlioWatch deployment {info.name} ({info.deployment_id}) on work pool {info.work_pool} at "
          f"{prefect_api_url()}: one cycle every {info.interval_s:g} s, one run at a time", flush=True)
    if args.deploy_only:
        return 0
    print(f"starting a process worker for {info.work_pool}", flush=True)
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", info.work_pool, "--type", "process",
            "--install-policy", "never"]
    os.execv(sys.executable, argv)  # noqa: S606 - the worker replaces this process (signals reach it)
    return 0  # pragma: no cover
