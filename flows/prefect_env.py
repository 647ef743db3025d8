"""Prefect settings that must be in the environment before ``import prefect``."""

from __future__ import annotations

import os

from engine.settings import Settings


def configure_prefect(settings: Settings) -> None:
    """Ephemeral Prefect under the state dir, with a start-up timeout that a cold home needs."""
    home = settings.state_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    # A fresh Prefect home takes ~28 s to start its ephemeral server here (stack-notes).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
