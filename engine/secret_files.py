"""Site secrets that the demo and a first start generate when none is configured.

A generated secret is written once (mode 0600, exclusive create, so two processes starting at
the same time agree) under the state dir's ``secrets/`` folder and read back afterwards.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def configured_or_generated(configured: str, path: Path, *, nbytes: int = 16) -> str:
    """``configured`` when set, else the secret kept at ``path`` (created on first use)."""
    if configured:
        return configured
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
