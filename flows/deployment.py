"""The stream as a Prefect deployment on a work pool, for sites that run a Prefect server.

Embedded mode (`gliowatch serve` without a server) repeats :func:`flows.service.run_one_cycle` in
one long-lived process. With a Prefect server (``PREFECT_API_URL``), `gliowatch serve --work-pool
NAME` instead registers :func:`scheduled_cycle` as a deployment whose interval schedule is the
poll interval, then starts a process worker on that pool. Every scheduled run is one cycle in a
fresh process that opens the store, does the cycle and closes it again.

- **One writer.** The deployment's concurrency limit is 1 with collision strategy CANCEL_NEW: a
  cycle that is still running when the next one is due makes the next one be cancelled, never
  run beside it (DuckDB has one writer).
- **Secrets stay out of Prefect.** Nothing from the settings is written into the deployment: no
  parameters, no job variables. The run process reads ``GLIOWATCH_*`` from the worker's
  environment, so the Orthanc password and the pseudonym salt never reach Prefect's database.
- **Restart-safe as before.** What was processed is recorded in DuckDB with the cursor; a run
  Prefect thinks is RUNNING after a crash changes nothing (stack-notes).
- The deployment's source is this checkout (``PROJECT_ROOT``); workers on other machines need
  the same code at the same path (or a deployment with a git source, see docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from prefect import flow

from engine.settings import PROJECT_ROOT, Settings

log = logging.getLogger("gliowatch.deployment")

DEPLOYMENT_NAME = "gliowatch-stream"
ENTRYPOINT = "flows/deployment.py:scheduled_cycle"


@flow(name="gliowatch-scheduled-cycle", log_prints=True)
def scheduled_cycle(reconcile: bool = True) -> str:
    """One cycle of the stream in a run process: settings from the environment, store opened and closed."""
    from engine.settings import load_settings
    from flows.prefect_env import configure_prefect
    from flows.runtime import build_runtime
    from flows.service import run_one_cycle

    settings = load_settings()
    configure_prefect(settings)
    rt = build_runtime(settings)
    try:
        report = run_one_cycle(rt, reconcile=reconcile)
    finally:
        rt.close()
    summary = report.summary()
    print(summary)
    return summary


@dataclass(frozen=True, slots=True)
class DeploymentInfo:
    deployment_id: str
    name: str
    work_pool: str
    interval_s: float


def prefect_api_url() -> str | None:
    """The configured Prefect server, or ``None`` for the embedded (ephemeral) mode."""
    url = os.environ.get("PREFECT_API_URL", "").strip()
    return url or None


def ensure_work_pool(name: str) -> None:
    """Create a process work pool called ``name`` unless the server has one."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            log.info("created process work pool %s", name)
        except ObjectAlreadyExists:
            pass


def deploy_stream(settings: Settings, *, work_pool: str, name: str = DEPLOYMENT_NAME) -> DeploymentInfo:
    """Register (or update) the stream's deployment on ``work_pool``; needs a Prefect server."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from engine.errors import ConfigError

    if prefect_api_url() is None:
        raise ConfigError(
            "A work pool needs a Prefect server, but PREFECT_API_URL is not set",
            action="Set PREFECT_API_URL (e.g. http://prefect:4200/api), or run `gliowatch serve` "
                   "without --work-pool for the embedded loop.",
        )
    ensure_work_pool(work_pool)
    interval = max(float(settings.watcher.poll_interval_s), 1.0)
    source = scheduled_cycle.from_source(source=str(PROJECT_ROOT), entrypoint=ENTRYPOINT)
    deployment_id = source.deploy(
        name=name,
        work_pool_name=work_pool,
        interval=interval,
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        description="GlioWatch stream: one watch cycle per run (ingest, segment, register, assess, alerts).",
        tags=["gliowatch"],
        build=False,
        push=False,
        print_next_steps=False,
    )
    return DeploymentInfo(str(deployment_id), name, work_pool, interval)
