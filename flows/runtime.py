"""The composition root: build every collaborator once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.archive import Archive
from engine.alerts.sinks import build_sinks
from engine.archive.orthanc import OrthancArchive
from engine.orthanc_server import resolve_password
from engine.state_paths import StatePaths
from engine.pseudonym import resolve_salt
from engine.series_rules import SeriesRules, load_series_rules
from engine.settings import Settings
from engine.store import Store, open_store


@dataclass(slots=True)
class Runtime:
    settings: Settings
    archive: Archive
    store: Store
    rules: SeriesRules
    key_salt: str
    sinks: dict[str, Any] = field(default_factory=dict)  # alert sinks by name

    @property
    def volumes_dir(self) -> Path:
        return self.settings.volumes_dir

    @property
    def paths(self) -> StatePaths:
        return self.settings.state_paths

    def close(self) -> None:
        _ACTIVE.pop(f"rt-{id(self)}", None)
        self.store.close()


#: runtimes of this process by key: flows that submit work to Dask take the key, not the runtime,
#: because a flow's parameters travel with every task it submits and a DuckDB connection cannot.
_ACTIVE: dict[str, Runtime] = {}


def runtime_key(rt: Runtime) -> str:
    key = f"rt-{id(rt)}"
    _ACTIVE[key] = rt
    return key


def runtime_for(key: str) -> Runtime:
    return _ACTIVE[key]


def secrets_dir(settings: Settings) -> Path:
    return settings.state_dir / "secrets"


def orthanc_archive(settings: Settings) -> OrthancArchive:
    password = resolve_password(settings.orthanc, secrets_dir(settings))
    return OrthancArchive(settings.orthanc.url, username=settings.orthanc.username,
                          password=password, timeout_s=settings.orthanc.timeout_s)


def build_runtime(settings: Settings, *, archive: Archive | None = None) -> Runtime:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(
        settings=settings,
        archive=archive if archive is not None else orthanc_archive(settings),
        store=open_store(settings.db_path),
        rules=load_series_rules(settings.series_rules),
        key_salt=resolve_salt(settings.privacy.key_salt, secrets_dir(settings)),
        sinks=build_sinks(settings.alerts, allowed_identifiers=settings.privacy.allowed_identifiers,
                          secrets_dir=secrets_dir(settings)),
    )
