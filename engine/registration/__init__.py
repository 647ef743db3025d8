"""Longitudinal registration: align a follow-up scan to the baseline or prior scan.

Convention (everywhere in this package): ``RegistrationResult.matrix`` is a 4x4 in RAS+ mm that
maps a point of the MOVING scan's world to the same anatomical point of the FIXED scan's world.

SimpleITK and torch are imported only by the implementation modules
(:mod:`.sitk_registrar`, :mod:`.torch_registrar`); :func:`make_registrar` imports the one it
returns, and the two class names below are resolved lazily.
"""

from __future__ import annotations

from typing import Any

from engine.registration.factory import make_registrar, registration_on_gpu
from engine.registration.masks import keep_mask
from engine.registration.protocol import Registrar, RegistrationResult, Stage
from engine.registration.qc import QcThresholds, require_passed
from engine.registration.resample import resample_to

__all__ = [
    "QcThresholds",
    "Registrar",
    "RegistrationResult",
    "SimpleItkRegistrar",
    "Stage",
    "TorchRegistrar",
    "keep_mask",
    "make_registrar",
    "registration_on_gpu",
    "require_passed",
    "resample_to",
]

_LAZY = {
    "SimpleItkRegistrar": "engine.registration.sitk_registrar",
    "TorchRegistrar": "engine.registration.torch_registrar",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module 'engine.registration' has no attribute {name!r}"
    raise AttributeError(msg)
