"""Pseudonymous patient keys: the only patient identifier GlioWatch shows, logs or alerts on.

>>> patient_key("12345", salt="s")
'P-DAE8A8FD3B'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SALT_FILE = "patient-key-salt"


def patient_key(patient_id: str, *, salt: str) -> str:
    """HMAC-SHA256 of the archive's PatientID under a site secret, shortened to 40 bits."""
    if not salt:
        msg = "Argument 'salt' must be a non-empty secret"
        raise ValueError(msg)
    digest = hmac.new(salt.encode(), patient_id.strip().encode(), hashlib.sha256).hexdigest()
    return f"P-{digest[:10].upper()}"


def resolve_salt(configured: str, secrets_dir: Path) -> str:
    """The configured salt, else one generated once and kept (0600) under the state dir."""
    if configured:
        return configured
    path = secrets_dir / SALT_FILE
    if path.exists():
        return path.read_text().strip()
    secrets_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(16)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
