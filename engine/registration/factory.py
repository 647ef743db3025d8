"""Pick a registrar from the settings (the composition root calls this once)."""

from __future__ import annotations

from engine.errors import ConfigError
from engine.registration.protocol import Registrar, Stage
from engine.registration.qc import QcThresholds
from engine.settings import RegistrationSettings

#: ``device`` values and what they select. "auto": torch (CUDA when available, else CPU). On the
#: CPU the torch path was chosen by measurement (docs/benchmarks/registration.md): on the
#: engine.modelling.synth pairs SimpleITK missed the 0.5 mm mean / 1 mm max target (up to 0.83 / 1.62 mm)
#: while torch met it (<= 0.30 / 0.56 mm) at >= the baseline SimpleITK's speed.
DEVICES = ("auto", "cpu", "cuda", "sitk", "torch")


def thresholds_from(settings: RegistrationSettings) -> QcThresholds:
    return QcThresholds(
        max_rotation_deg=settings.max_rotation_deg,
        max_translation_mm=settings.max_translation_mm,
        max_scale_deviation=settings.max_scale_deviation,
        min_similarity=settings.min_similarity,
        min_overlap=settings.min_overlap,
    )


def registration_on_gpu(settings: RegistrationSettings, *, cuda_available: bool | None = None) -> bool:
    """Whether :func:`make_registrar` would register on CUDA with these settings."""
    device = settings.device.strip().lower()
    if device not in ("cuda", "torch", "auto"):
        return False
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    return bool(cuda_available)


def make_registrar(settings: RegistrationSettings, *, cuda_available: bool | None = None) -> Registrar:
    """The registrar the settings ask for.

    ``device``: "auto" or "torch" (torch on CUDA when available, else on the CPU), "cuda"
    (torch on CUDA; an error without it), "cpu" or "sitk" (SimpleITK, the faster but on the
    synthetic cohort less accurate CPU path). ``cuda_available`` overrides the detection (tests).
    """
    device = settings.device.strip().lower()
    if device not in DEVICES:
        raise ConfigError(
            f"Setting registration.device has an invalid value {settings.device!r}",
            action=f"Use one of: {', '.join(DEVICES)}.",
        )
    try:
        stage = Stage(settings.stage.strip().lower())
    except ValueError as exc:
        raise ConfigError(
            f"Setting registration.stage has an invalid value {settings.stage!r}",
            action=f"Use one of: {', '.join(s.value for s in Stage)}.",
        ) from exc
    common = {"stage": stage, "thresholds": thresholds_from(settings), "margin_mm": settings.exclusion_margin_mm}
    if device in ("cuda", "torch", "auto"):
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        if device == "cuda" and not cuda_available:
            raise ConfigError(
                "Setting registration.device is 'cuda' but no CUDA device is available",
                action="Set GLIOWATCH_REGISTRATION__DEVICE=auto (or cpu) on machines without a GPU.",
            )
        from engine.registration.torch_registrar import TorchRegistrar

        return TorchRegistrar(device="cuda" if cuda_available else "cpu", **common)
    from engine.registration.sitk_registrar import SimpleItkRegistrar

    return SimpleItkRegistrar(**common)
