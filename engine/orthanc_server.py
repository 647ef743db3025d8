"""The project's own Orthanc: configuration, start, stop, status.

Debian's ``orthanc`` 1.10.1 runs as a plain process with a configuration this module writes under
the state directory: HTTP on a configurable port with authentication on, remote access refused
(1.10.1 has no bind-address option and listens on every interface; ``RemoteAccessAllowed: false``
refuses non-loopback clients), the DICOM server off unless configured, data under the state dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from engine.errors import ArchiveUnavailableError, ConfigError
from engine.secret_files import configured_or_generated
from engine.settings import OrthancSettings

PASSWORD_FILE = "orthanc-password"


@dataclass(frozen=True, slots=True)
class OrthancPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "orthanc.json"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def pidfile(self) -> Path:
        return self.root / "orthanc.pid"

    @property
    def logfile(self) -> Path:
        return self.root / "orthanc.log"


@dataclass(frozen=True, slots=True)
class OrthancStatus:
    running: bool
    pid: int | None
    url: str
    version: str | None = None
    studies: int | None = None


DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
DICOMWEB_ROOT = "/dicom-web/"


def dicomweb_plugins() -> list[str]:
    """The DICOMweb plugin when Debian's ``orthanc-dicomweb`` is installed (``make system``
    installs it); without it Orthanc still serves the REST API GlioWatch's ingest falls back to."""
    return [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else []


def resolve_password(settings: OrthancSettings, secrets_dir: Path) -> str:
    """The Orthanc password: from the environment when set, else a generated one kept 0600."""
    return configured_or_generated(settings.password, secrets_dir / PASSWORD_FILE, nbytes=18)


def write_config(settings: OrthancSettings, paths: OrthancPaths, *, password: str) -> Path:
    """Write the Orthanc configuration (0600: it holds the password)."""
    if not 1 <= settings.http_port <= 65535:
        raise ConfigError(f"Orthanc HTTP port {settings.http_port} is out of range")
    paths.storage.mkdir(parents=True, exist_ok=True)
    config = {
        "Name": "GlioWatch",
        "StorageDirectory": str(paths.storage),
        "IndexDirectory": str(paths.storage),
        "HttpPort": settings.http_port,
        "HttpServerEnabled": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {settings.username: password},
        "DicomServerEnabled": settings.dicom_enabled,
        "DicomPort": settings.dicom_port,
        "DicomAet": "GLIOWATCH",
        "StableAge": settings.stable_age_s,
        "SaveJobs": False,
        "StorageCompression": False,
        "OverwriteInstances": False,
        "KeepAlive": True,
        "HttpTimeout": 60,
        "Plugins": dicomweb_plugins(),
        # DICOMweb (Debian's orthanc-dicomweb): whole-series retrieval in one multipart response
        # for ingest, and the QIDO/WADO root the OHIF viewer reads. Same users as the REST API.
        "DicomWeb": {"Enable": True, "Root": DICOMWEB_ROOT, "EnableWado": True, "Ssl": False,
                     "StudiesMetadata": "Full", "SeriesMetadata": "Full"},
    }
    tmp = paths.config.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=2)
    os.replace(tmp, paths.config)
    return paths.config


def _read_pid(paths: OrthancPaths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # pragma: no cover - another user's process
        return pid
    return None if _proc_state(pid) in ("Z", "X") else pid


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs. An exited process that its parent has not reaped yet (a
    zombie: Orthanc started by a ``gliowatch demo`` that is still serving the dashboard, stopped
    from another shell) has exited: ``kill(pid, 0)`` alone would call it alive forever."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _proc_state(pid) not in ("Z", "X")


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, Z...), None where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: the state follows the last ')'
    rest = stat[stat.rfind(")") + 1:].split()
    return rest[0] if rest else None


def start(
    settings: OrthancSettings, paths: OrthancPaths, *, password: str, timeout_s: float = 30.0
) -> int:
    """Start Orthanc (idempotent: returns the running PID if it is already up)."""
    existing = _read_pid(paths)
    if existing is not None:
        return existing
    write_config(settings, paths, password=password)
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed executable from settings
            [settings.executable, f"--logfile={paths.logfile}", str(paths.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise ConfigError(
            f"Orthanc executable '{settings.executable}' was not found",
            action="Run `make install` (it installs Debian's orthanc package).",
        ) from exc
    paths.pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ArchiveUnavailableError(
                f"Orthanc exited during start-up with code {proc.returncode}",
                action=f"Read {paths.logfile}; a previous Orthanc may still hold the database.",
            )
        if _ping(settings, password):
            return proc.pid
        time.sleep(0.1)
    stop(paths)
    raise ArchiveUnavailableError(
        f"Orthanc did not answer on {settings.url} within {timeout_s:.0f} s",
        action=f"Read {paths.logfile}.",
    )


def _ping(settings: OrthancSettings, password: str) -> dict | None:
    try:
        resp = requests.get(
            f"{settings.url}/system", auth=(settings.username, password), timeout=2
        )
    except requests.RequestException:
        return None
    return resp.json() if resp.status_code == 200 else None


def stop(paths: OrthancPaths, *, timeout_s: float = 20.0) -> bool:
    """Stop Orthanc and wait for its exit (a new start on the same data fails before that)."""
    pid = _read_pid(paths)
    if pid is None:
        paths.pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            raise ArchiveUnavailableError(
                f"Orthanc (pid {pid}) did not exit after SIGTERM and SIGKILL",
                action=f"Check the process by hand (ps -p {pid}) and read {paths.logfile}.",
            )
    paths.pidfile.unlink(missing_ok=True)
    return True


def status(settings: OrthancSettings, paths: OrthancPaths, *, password: str) -> OrthancStatus:
    pid = _read_pid(paths)
    info = _ping(settings, password) if pid is not None else None
    studies = None
    if info is not None:
        try:
            resp = requests.get(
                f"{settings.url}/statistics", auth=(settings.username, password), timeout=2
            )
            studies = resp.json().get("CountStudies") if resp.ok else None
        except requests.RequestException:
            studies = None
    return OrthancStatus(
        running=info is not None,
        pid=pid,
        url=settings.url,
        version=info.get("Version") if info else None,
        studies=studies,
    )
