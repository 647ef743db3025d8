"""The composition root: build every collaborator once from the settings and hand it on.

A :class:`Runtime` is what one writer process holds: the store (the only writer), the archive, and
the collaborators the use cases take (``engine.usecases``), built here once. Flows and commands
pass it, typed, to the use cases; nothing finds it through a global. Work that runs on Dask
workers takes only picklable primitives (jobs, settings, paths: ``flows.process``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.archive import Archive
from engine.alerts.protocol import AlertSink
from engine.alerts.sinks import build_sinks
from engine.archive.orthanc import OrthancArchive
from engine.memory import keep_freed_memory
from engine.orthanc_server import resolve_password
from engine.state_paths import StatePaths
from engine.pseudonym import resolve_salt
from engine.series_rules import SeriesRules, load_series_rules
from engine.settings import Settings
from engine.store import Store, open_store
from engine.usecases.assess_patient import AssessmentPolicy
from engine.usecases.ingest_study import IngestSources


@dataclass(slots=True)
class Runtime:
    settings: Settings
    archive: Archive
    store: Store
    rules: SeriesRules
    key_salt: str
    sinks: dict[str, AlertSink]  # alert sinks by name
    ingest_sources: IngestSources  # what ingest_study reads and where it writes
    assessment: AssessmentPolicy  # how assess_patient assesses and alerts

    @property
    def volumes_dir(self) -> Path:
        return self.settings.volumes_dir

    @property
    def paths(self) -> StatePaths:
        return self.settings.state_paths

    def close(self) -> None:
        self.store.close()


def secrets_dir(settings: Settings) -> Path:
    return settings.state_dir / "secrets"


def orthanc_archive(settings: Settings) -> OrthancArchive:
    password = resolve_password(settings.orthanc, secrets_dir(settings))
    return OrthancArchive(settings.orthanc.url, username=settings.orthanc.username,
                          password=password, timeout_s=settings.orthanc.timeout_s)


def build_runtime(settings: Settings, *, archive: Archive | None = None) -> Runtime:
    keep_freed_memory(settings.keep_freed_memory)  # the process that runs the steps (engine.memory)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    archive = archive if archive is not None else orthanc_archive(settings)
    rules = load_series_rules(settings.series_rules)
    key_salt = resolve_salt(settings.privacy.key_salt, secrets_dir(settings))
    sinks = build_sinks(settings.alerts, allowed_identifiers=settings.privacy.allowed_identifiers,
                        secrets_dir=secrets_dir(settings))
    return Runtime(
        settings=settings, archive=archive, store=open_store(settings.db_path), rules=rules, key_salt=key_salt,
        sinks=sinks,
        ingest_sources=IngestSources(archive=archive, rules=rules, volumes_dir=settings.volumes_dir,
                                     key_salt=key_salt, max_instances=settings.watcher.max_series_instances),
        assessment=AssessmentPolicy(profile=settings.assessment.profile, mode=settings.assessment.mode,
                                    paths=settings.state_paths, alert_sinks=tuple(sinks),
                                    base_url=settings.alerts.dashboard_base_url),
    )
