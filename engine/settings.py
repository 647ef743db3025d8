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


#: what ``[[segmentation.models]]`` entries may say (engine.segmentation.registry).
MODEL_KINDS = ("builtin", "monai-bundle", "nnunet", "anomaly")
MODEL_SPACES = ("native", "brats-sri24")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One ``[[segmentation.models]]`` entry of the model registry (engine.segmentation.registry)."""

    name: str
    kind: str  # builtin | monai-bundle | nnunet | anomaly
    path: str
    #: sequences the model needs (nnunet: also every channel of its dataset.json); empty: T1c or T1.
    sequences: tuple[str, ...] = ()
    labels: str = ""  # a label preset (nnunet: brats2021|brats2023|brats2024-post; bundle: its convention)
    #: explicit {value = "NETC|SNFH|ET|RC"}, wins over labels (left out of the hash: settings are cache keys).
    label_map: dict[int, str] = field(default_factory=dict, hash=False)
    space: str = "native"  # native | brats-sri24 (engine.segmentation.space)
    device: str = ""  # empty: segmentation.device
    folds: tuple[str, ...] = ()  # nnunet: the folds to ensemble; empty: every fold found
    mirroring: bool = True  # nnunet: test-time mirroring

    def __post_init__(self) -> None:
        if not self.name.strip():
            msg = "Argument 'name' of a segmentation model must not be empty"
            raise ValueError(msg)
        if self.kind not in MODEL_KINDS:
            msg = f"Argument 'kind' of model {self.name!r} must be one of {', '.join(MODEL_KINDS)}, got {self.kind!r}"
            raise ValueError(msg)
        if self.space not in MODEL_SPACES:
            msg = f"Argument 'space' of model {self.name!r} must be one of {', '.join(MODEL_SPACES)}, got {self.space!r}"
            raise ValueError(msg)


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
    #: the model registry, best first: each study runs the first model whose sequences it has
    #: (engine.segmentation.registry); model_dir / bundle_dir above are the last, implicit, entry.
    models: tuple[ModelEntry, ...] = ()
    #: run only this registry model for every study (``gliowatch rescore --model NAME``); empty: choose per study.
    model: str = ""
    #: whole-head studies: "none" sends them to ``model_dir``; "hd-bet" extracts the brain (HD-BET,
    #: engine.segmentation.brain_extraction) and sends them to ``stripped_model_dir`` as well
    #: (no effect when that is empty: one model for every study).
    brain_extraction: str = "none"
    brain_extraction_mode: str = "fast"  # fast (1 of HD-BET's 5 folds) | accurate (all 5)
    #: a skull-stripped SRI24 T1 NIfTI (240 x 240 x 155, 1 mm) for models that expect BraTS space
    #: (engine.segmentation.space); no package ships one, so it is the site's file.
    atlas_path: str = ""

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            msg = f"Argument 'models' names each model once, got {', '.join(duplicates)} twice"
            raise ValueError(msg)


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
    #: True: a CRITICAL clinical alert is sent only once a reader confirmed its scan's segmentation
    #: (it is shown on the dashboard at once, marked "proposed"); False: sent at once (issue 32)
    critical_waits_for_confirmation: bool = False


@dataclass(frozen=True, slots=True)
class WriteBackSettings:
    """Results stored into the study in the archive as DICOM SEG + SR, optionally a key image (engine.writeback)."""

    enabled: bool = True
    labelmap: bool = False  # LABELMAP SEG (fewer viewers read it) instead of BINARY
    delete_superseded: bool = False  # delete a re-score's superseded SEG/SR from the archive
    key_image: bool = False  # also a secondary capture: the labels and RANO lines burnt into the T1c (their plane)


@dataclass(frozen=True, slots=True)
class ViewerSettings:
    """The OHIF viewer served on loopback (``gliowatch viewer``, engine.viewer)."""

    host: str = "127.0.0.1"
    port: int = 8643
    dist_dir: str = "build/ohif/package/dist"  # @ohif/app's built viewer (make viewer), under the project

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    state_dir: Path = PROJECT_ROOT / "state"
    series_rules: Path = CONFIG_DIR / "series_rules.toml"
    log_level: str = "INFO"
    #: where segmentation/registration run: "threads", or "dask://host:port" (GLIOWATCH_TASK_RUNNER)
    task_runner: str = "threads"
    workers: int = 2  # thread-pool size for the heavy steps
    gpu_slots: int = 1  # concurrent model runs per worker process (bursts queue)
    #: keep freed memory for the next study instead of returning it to the kernel (engine.memory;
    #: GLIOWATCH_KEEP_FREED_MEMORY): half the page faults, the process stays near its peak size;
    #: off by default: measured at most ~6 % per study, and not visible in the demo or bench_latency
    keep_freed_memory: bool = False
    orthanc: OrthancSettings = field(default_factory=OrthancSettings)
    watcher: WatcherSettings = field(default_factory=WatcherSettings)
    segmentation: SegmentationSettings = field(default_factory=SegmentationSettings)
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    assessment: AssessmentSettings = field(default_factory=AssessmentSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    writeback: WriteBackSettings = field(default_factory=WriteBackSettings)
    viewer: ViewerSettings = field(default_factory=ViewerSettings)

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

    @property
    def writeback_dir(self) -> Path:
        """The DICOM objects written back into the archive, as files (``gliowatch export``)."""
        return self.state_dir / "writeback"


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
