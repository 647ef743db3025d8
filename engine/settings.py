"""One settings tree, loaded once at the edge (CLI, flow entry, dashboard start).

Sources, later wins:
1. the defaults in these dataclasses (they run on one machine with no configuration at all);
2. a TOML file: ``GLIOWATCH_CONFIG`` or ``config/gliowatch.toml`` under the project root;
3. environment variables ``GLIOWATCH_<KEY>`` for top-level keys and
   ``GLIOWATCH_<SECTION>__<KEY>`` for keys of a section (e.g. ``GLIOWATCH_ORTHANC__HTTP_PORT``).

Secrets (passwords, webhook keys) are read from the environment only; a TOML file that holds
one is refused.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config_loading import build_config
from engine.errors import ConfigError
from engine.state_paths import StatePaths

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"
ENV_PREFIX = "GLIOWATCH_"
SECRET_KEYS = frozenset({"password", "hmac_key", "smtp_password", "cookie_secret"})


@dataclass(frozen=True, slots=True)
class OrthancSettings:
    http_port: int = 8642
    dicom_port: int = 4642
    dicom_enabled: bool = False
    stable_age_s: int = 60
    username: str = "gliowatch"
    password: str = ""  # secret: GLIOWATCH_ORTHANC__PASSWORD; generated for the demo when empty
    executable: str = "Orthanc"
    host: str = "127.0.0.1"
    timeout_s: float = 30.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@dataclass(frozen=True, slots=True)
class WatcherSettings:
    poll_interval_s: float = 5.0
    changes_batch: int = 200
    reconcile_every: int = 10  # reconciliation sweep every N cycles (and on start)
    max_series_instances: int = 2000


@dataclass(frozen=True, slots=True)
class SegmentationSettings:
    enabled: bool = True
    device: str = "auto"  # auto | cpu | cuda
    model_dir: str = "models/gliowatch-unet"
    bundle_dir: str = ""  # a MONAI bundle the user brings (brats_mri_segmentation layout)
    bundle_labels: str = "brats2024"
    #: rigidly realign a sequence the patient moved between onto the T1c when needed
    #: (engine.segmentation.alignment); false trusts the DICOM geometry.
    align_sequences: bool = True
    #: the segmenter for skull-stripped studies (engine.segmentation.input_kind): a model folder
    #: (``gliowatch-anomaly`` or a network); empty: the model above for every study.
    stripped_model_dir: str = "models/gliowatch-anomaly"
    #: whole-head studies: "none" sends them to ``model_dir``; "hd-bet" extracts the brain (HD-BET,
    #: engine.segmentation.brain_extraction) and sends them to ``stripped_model_dir`` as well
    #: (no effect when that is empty: one model for every study).
    brain_extraction: str = "none"
    brain_extraction_mode: str = "fast"  # fast (1 of HD-BET's 5 folds) | accurate (all 5)
    #: a skull-stripped SRI24 T1 NIfTI (240 x 240 x 155, 1 mm) for models that expect BraTS space
    #: (engine.segmentation.space); no package ships one, so it is the site's file.
    atlas_path: str = ""


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    enabled: bool = True
    reference: str = "T1c"
    device: str = "auto"  # auto|torch (torch, CUDA if there) | cuda | cpu|sitk (SimpleITK)
    stage: str = "rigid"  # rigid | affine (rigid, then a 12-parameter refinement)
    exclusion_margin_mm: float = 5.0  # tumour/cavity labels grown by this much leave the similarity
    max_rotation_deg: float = 20.0  # QC limits: beyond any of them the registration fails
    max_translation_mm: float = 40.0
    max_scale_deviation: float = 0.10
    min_similarity: float = 0.15
    min_overlap: float = 0.80


@dataclass(frozen=True, slots=True)
class AssessmentSettings:
    profile: str = "rano2"  # rano2 | mrano | rano2010
    mode: str = "2d"  # 2d | 3d


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    #: DICOM attributes that may appear in logs/alerts; empty = pseudonymous key and dates only.
    allowed_identifiers: tuple[str, ...] = ()
    #: secret for the pseudonymous patient key (HMAC of PatientID); generated when empty.
    key_salt: str = ""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    #: sinks every alert goes to: dashboard (the alert row itself), webhook, email.
    sinks: tuple[str, ...] = ("dashboard",)
    dashboard_base_url: str = "http://127.0.0.1:8501"  # alert links: {base}/?patient=<key>
    webhook_url: str = ""
    webhook_timeout_s: float = 10.0
    hmac_key: str = ""  # secret: GLIOWATCH_ALERTS__HMAC_KEY (webhook signature)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""  # secret: GLIOWATCH_ALERTS__SMTP_PASSWORD
    smtp_from: str = "gliowatch@localhost"
    smtp_to: tuple[str, ...] = ()
    smtp_timeout_s: float = 10.0
    max_attempts: int = 0  # 0 = retry forever (a sink down for hours loses nothing)
    backoff_base_s: float = 30.0  # first retry after 30 s, doubling ...
    backoff_max_s: float = 900.0  # ... up to 15 min between attempts
    escalate_after_h: float = 24.0  # unacknowledged alerts are sent again, marked ESCALATED


@dataclass(frozen=True, slots=True)
class Settings:
    state_dir: Path = PROJECT_ROOT / "state"
    series_rules: Path = CONFIG_DIR / "series_rules.toml"
    log_level: str = "INFO"
    #: where segmentation/registration run: "threads", or "dask://host:port" (GLIOWATCH_TASK_RUNNER)
    task_runner: str = "threads"
    workers: int = 2  # thread-pool size for the heavy steps
    gpu_slots: int = 1  # concurrent model runs per worker process (bursts queue)
    orthanc: OrthancSettings = field(default_factory=OrthancSettings)
    watcher: WatcherSettings = field(default_factory=WatcherSettings)
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    assessment: AssessmentSettings = field(default_factory=AssessmentSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "gliowatch.duckdb"

    @property
    def snapshot_path(self) -> Path:
        return self.state_dir / "gliowatch.snapshot.duckdb"

    @property
    def state_paths(self) -> StatePaths:
        """The folders of the files the store points at (volumes, labels, registered)."""
        return StatePaths.under(self.state_dir)

    @property
    def volumes_dir(self) -> Path:
        return self.state_paths.volumes_dir

    @property
    def orthanc_dir(self) -> Path:
        return self.state_dir / "orthanc"


def load_settings(
    path: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load the settings tree from defaults, an optional TOML file and the environment."""
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    toml_path = Path(path) if path else _default_toml(env)
    if toml_path is not None:
        data = _read_toml(toml_path)
    _merge_env(data, env)
    source = "settings" if toml_path is None else f"settings ({toml_path} and the GLIOWATCH_* environment)"
    return build_config(Settings, data, source=source, lenient=True)


def _default_toml(env: Mapping[str, str]) -> Path | None:
    explicit = env.get(f"{ENV_PREFIX}CONFIG")
    if explicit:
        return Path(explicit)
    candidate = CONFIG_DIR / "gliowatch.toml"
    return candidate if candidate.exists() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"Settings file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Settings file {path} is not valid TOML", detail=str(exc)) from exc
    _refuse_secrets(data, str(path))
    return data


def _refuse_secrets(data: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping):
            _refuse_secrets(value, f"{where}:{key}")
        elif key in SECRET_KEYS and value:
            raise ConfigError(
                f"Secret '{key}' found in {where}",
                action=f"Remove it and set GLIOWATCH_<SECTION>__{key.upper()} in the environment.",
            )


def _merge_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if "__" in key:
            section, sub = key.split("__", 1)
            data.setdefault(section, {})
            if isinstance(data[section], dict):
                data[section][sub] = value
        else:
            data[key] = value
