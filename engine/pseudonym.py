"""Pseudonymous patient keys: the only patient identifier GlioWatch shows, logs or alerts on.

>>> patient_key("12345", salt="s")
'P-DAE8A8FD3B'
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from engine.secret_files import configured_or_generated

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
    return configured_or_generated(configured, secrets_dir / SALT_FILE)
