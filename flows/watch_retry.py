"""Retries decided by the error type: only errors that say trying again can help."""

from __future__ import annotations

from typing import Any

from engine.errors import GlioWatchError


def retry_if_retryable(task_: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry GlioWatchError with ``retryable`` set, nothing else."""
    try:
        state.result()
    except GlioWatchError as exc:
        return exc.retryable
    except Exception:  # noqa: BLE001 - any other failure is not retried
        return False
    return False
