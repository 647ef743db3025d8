"""Whether a writer is running, told without opening the store: ``state_dir/writer.json``.

The dashboard never opens the main store (DuckDB locks it against every other process), so it
cannot ask the store who holds it. The writer's loop announces itself instead: once it holds the
store it writes this small file (temporary name, then ``os.replace``) with its process id, host,
poll interval and the time of its last finished cycle, rewrites it after every cycle, and removes
it when it stops. A writer killed without warning leaves the file behind; on the same host its
process id then no longer names a live process, and elsewhere the last cycle grows old, so a
reader still tells "a pipeline will apply your request" from "requests wait until one starts".
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

FILE_NAME = "writer.json"
#: a writer on another host counts as stopped when its last cycle is older than this many poll
#: intervals (and at least ``MIN_STALE_S``): a cycle that segments many studies takes minutes.
STALE_POLLS = 10
MIN_STALE_S = 900.0


class WriterState(StrEnum):
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"  # a writer ran and stopped (or was killed)
    NEVER = "NEVER"  # no writer has announced itself in this state dir


@dataclass(frozen=True, slots=True)
class WriterPresence:
    """What the running writer says about itself (times are naive UTC)."""

    pid: int
    host: str
    started_at: datetime
    poll_interval_s: float
    last_cycle_at: datetime | None = None

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started_at": self.started_at.isoformat(),
                           "poll_interval_s": self.poll_interval_s,
                           "last_cycle_at": self.last_cycle_at.isoformat() if self.last_cycle_at else None})

    @classmethod
    def from_json(cls, text: str) -> WriterPresence:
        data = json.loads(text)
        last = data.get("last_cycle_at")
        return cls(pid=int(data["pid"]), host=str(data["host"]),
                   started_at=datetime.fromisoformat(data["started_at"]),
                   poll_interval_s=float(data["poll_interval_s"]),
                   last_cycle_at=datetime.fromisoformat(last) if last else None)


def presence_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / FILE_NAME


def announce_writer(state_dir: Path | str, *, poll_interval_s: float, now: datetime) -> WriterPresence:
    """Called by the writer once it holds the store."""
    presence = WriterPresence(pid=os.getpid(), host=socket.gethostname(), started_at=now,
                              poll_interval_s=poll_interval_s)
    _write(state_dir, presence)
    return presence


def record_cycle(state_dir: Path | str, presence: WriterPresence, *, now: datetime) -> WriterPresence:
    """Called by the writer after each cycle."""
    updated = WriterPresence(pid=presence.pid, host=presence.host, started_at=presence.started_at,
                             poll_interval_s=presence.poll_interval_s, last_cycle_at=now)
    _write(state_dir, updated)
    return updated


def withdraw_writer(state_dir: Path | str, presence: WriterPresence) -> None:
    """Called by the writer when it stops; leaves another writer's file alone."""
    current = read_presence(state_dir)
    if current is not None and (current.pid, current.host) == (presence.pid, presence.host):
        presence_path(state_dir).unlink(missing_ok=True)


def read_presence(state_dir: Path | str) -> WriterPresence | None:
    try:
        return WriterPresence.from_json(presence_path(state_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):  # not ours or damaged: no writer vouches for itself
        return None


def writer_state(presence: WriterPresence | None, *, now: datetime,
                 is_alive: Callable[[int], bool] | None = None) -> WriterState:
    """RUNNING when the announced writer still lives: on this host by its process id, elsewhere by
    the age of its last cycle."""
    if presence is None:
        return WriterState.NEVER
    if presence.host == socket.gethostname():
        return WriterState.RUNNING if (is_alive or pid_alive)(presence.pid) else WriterState.STOPPED
    stale_s = max(STALE_POLLS * presence.poll_interval_s, MIN_STALE_S)
    seen = presence.last_cycle_at or presence.started_at
    return WriterState.RUNNING if now - seen <= timedelta(seconds=stale_s) else WriterState.STOPPED


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _write(state_dir: Path | str, presence: WriterPresence) -> None:
    target = presence_path(state_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{FILE_NAME}.{presence.pid}.tmp")
    tmp.write_text(presence.to_json(), encoding="utf-8")
    os.replace(tmp, target)
