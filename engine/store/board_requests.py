"""Tumour-board requests and their queue: one file per request in ``state_dir/requests/``.

The dashboard never opens the main store, for reading or writing. It writes each request (a page
view, an acknowledgement, a decision, an event correction) as one JSON file: under a temporary
name first, flushed to disk, then ``os.replace``-d to its final name, so the queue never holds a
half-written request. Only the writer process reads the queue with a purpose
(:func:`engine.usecases.apply_board_request.apply_board_requests`): it applies the files in name
order (the name starts with the UTC time of the request), each in one transaction recorded by ``request_id``,
then removes the file, or parks it in ``failed/`` with the reason.

Why files rather than a second small database: the two processes share no lock, so neither can
block or fail the other (a DuckDB file is locked against every other process; SQLite would need
its own locking across a crash); a crash of the dashboard leaves either a whole request or a
stray temporary file that nobody reads; a crash of the writer between its commit and the file's
removal leaves a file whose ``request_id`` is already recorded, so it is discarded, not applied
again; the queue can be read (``queued_requests``) by the dashboard with no database at all.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path

from engine.reader_values import ReaderValueKind
from engine.response.inputs import ClinicalStatus
from engine.store.schema_reader import END_COLUMNS

REQUESTS_DIR = "requests"
FAILED_DIR = "failed"
#: temporary files older than this were left by a process that died while writing one.
STALE_TEMP_S = 3600.0


class RequestKind(StrEnum):
    PAGE_VIEW = "PAGE_VIEW"
    ACKNOWLEDGE_ALERT = "ACKNOWLEDGE_ALERT"
    RECORD_DECISION = "RECORD_DECISION"
    CORRECT_EVENT = "CORRECT_EVENT"
    # the reader's values of one scan (engine.reader_values); each re-assesses the patient
    ACCEPT_SEGMENTATION = "ACCEPT_SEGMENTATION"
    REJECT_SEGMENTATION = "REJECT_SEGMENTATION"
    CHOOSE_TARGETS = "CHOOSE_TARGETS"
    SET_DIAMETERS = "SET_DIAMETERS"
    RECORD_NEW_LESION = "RECORD_NEW_LESION"
    RECORD_NONMEASURABLE_PROGRESSION = "RECORD_NONMEASURABLE_PROGRESSION"
    RECORD_STEROID_DOSE = "RECORD_STEROID_DOSE"
    RECORD_CLINICAL_STATUS = "RECORD_CLINICAL_STATUS"


class Decision(StrEnum):
    """What a tumour board decided for a patient (stored as the value)."""

    CONTINUE_SURVEILLANCE = "CONTINUE_SURVEILLANCE"
    SHORT_INTERVAL_SCAN = "SHORT_INTERVAL_SCAN"
    ADVANCED_IMAGING = "ADVANCED_IMAGING"
    CHANGE_THERAPY = "CHANGE_THERAPY"
    SURGERY_OR_BIOPSY = "SURGERY_OR_BIOPSY"
    OTHER = "OTHER"


_REQUIRED: dict[RequestKind, tuple[str, ...]] = {
    RequestKind.PAGE_VIEW: ("page",),
    RequestKind.ACKNOWLEDGE_ALERT: ("alert_id", "note"),
    RequestKind.RECORD_DECISION: ("decision", "note"),
    RequestKind.CORRECT_EVENT: ("event", "event_date", "note"),
    RequestKind.ACCEPT_SEGMENTATION: ("study_uid", "note"),
    RequestKind.REJECT_SEGMENTATION: ("study_uid", "note"),
    RequestKind.CHOOSE_TARGETS: ("study_uid", "track_ids", "note"),
    RequestKind.SET_DIAMETERS: ("study_uid", "lesion_index", "d1_mm", "d2_mm", "note"),
    RequestKind.RECORD_NEW_LESION: ("study_uid", "present", "note"),
    RequestKind.RECORD_NONMEASURABLE_PROGRESSION: ("study_uid", "present", "note"),
    RequestKind.RECORD_STEROID_DOSE: ("study_uid", "mg", "note"),
    RequestKind.RECORD_CLINICAL_STATUS: ("study_uid", "status", "note"),
}

#: request kinds that record a reader value (engine.store.board applies them through reader_value)
READER_KINDS: frozenset[RequestKind] = frozenset({
    RequestKind.ACCEPT_SEGMENTATION, RequestKind.REJECT_SEGMENTATION, RequestKind.CHOOSE_TARGETS,
    RequestKind.SET_DIAMETERS, RequestKind.RECORD_NEW_LESION, RequestKind.RECORD_NONMEASURABLE_PROGRESSION,
    RequestKind.RECORD_STEROID_DOSE, RequestKind.RECORD_CLINICAL_STATUS})


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class BoardRequest:
    """One request from the dashboard; valid once constructed."""

    kind: RequestKind
    user: str
    patient_key: str | None
    payload: Mapping[str, str]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    requested_at: datetime = field(default_factory=now_utc)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RequestKind(self.kind))
        if not self.user:
            msg = "Argument 'user' must name the logged-in user"
            raise ValueError(msg)
        missing = [k for k in _REQUIRED[self.kind] if k not in self.payload]
        if missing:
            msg = f"Argument 'payload' of a {self.kind} request must have {', '.join(missing)}"
            raise ValueError(msg)
        if self.kind != RequestKind.PAGE_VIEW and not self.patient_key:
            msg = f"Argument 'patient_key' is required for a {self.kind} request"
            raise ValueError(msg)
        if self.kind == RequestKind.RECORD_DECISION:
            Decision(self.payload["decision"])
        if self.kind == RequestKind.CORRECT_EVENT:
            date.fromisoformat(self.payload["event_date"])
        if self.kind in READER_KINDS:
            reader_value(self)  # refuses a malformed value now, in the dashboard
            reader_ends(self)


    def to_json(self) -> str:
        return json.dumps(self._fields(), sort_keys=True)

    def _fields(self) -> dict:
        return {"request_id": self.request_id, "kind": self.kind.value, "user": self.user,
                "patient_key": self.patient_key, "payload": dict(self.payload),
                "requested_at": self.requested_at.isoformat()}

    @classmethod
    def from_json(cls, text: str) -> BoardRequest:
        data = json.loads(text)
        return cls(kind=RequestKind(data["kind"]), user=str(data["user"]),
                   patient_key=data.get("patient_key"),
                   payload={str(k): str(v) for k, v in dict(data["payload"]).items()},
                   request_id=str(data["request_id"]),
                   requested_at=datetime.fromisoformat(data["requested_at"]))


def _number(payload: Mapping[str, str], name: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(payload[name])
    except ValueError:
        value = float("nan")
    if not value >= minimum:
        msg = f"Argument '{name}' must be a number >= {minimum:g}, got {payload[name]!r}"
        raise ValueError(msg)
    return value


def _yes(payload: Mapping[str, str], name: str) -> bool:
    text = payload[name].strip().lower()
    if text not in ("true", "false"):
        msg = f"Argument '{name}' must be 'true' or 'false', got {payload[name]!r}"
        raise ValueError(msg)
    return text == "true"


#: payload keys of the diameter ends a reader clicked for a new lesion: the ``reader_values`` columns
END_KEYS: tuple[str, ...] = END_COLUMNS
#: how far a clicked diameter's length may be from the d1 / d2 sent with it (they are sent to 0.1 mm)
END_LENGTH_TOLERANCE_MM = 0.1


def _world_point(payload: Mapping[str, str], name: str) -> list[float]:
    try:
        point = [float(v) for v in json.loads(payload[name])]
    except (ValueError, TypeError) as exc:
        msg = f"Argument '{name}' must be a JSON [x, y, z] point in world mm, got {payload[name]!r}"
        raise ValueError(msg) from exc
    if len(point) != 3 or not all(math.isfinite(v) for v in point):
        msg = f"Argument '{name}' must be a JSON [x, y, z] point in world mm, got {payload[name]!r}"
        raise ValueError(msg)
    return point


def reader_ends(request: BoardRequest) -> dict[str, str] | None:
    """The ends of a new lesion's diameters a reader clicked (``END_KEYS`` -> JSON [x, y, z] world
    mm, d1's then d2's), or None when the request carries none; ValueError when they are partial, on
    another kind of request, or do not measure the d1 and d2 sent with them."""
    given = [k for k in END_KEYS if request.payload.get(k)]
    if not given:
        return None
    if request.kind != RequestKind.RECORD_NEW_LESION:
        msg = f"A {request.kind} request carries no diameter ends (only a new lesion drawn on the image does)"
        raise ValueError(msg)
    if len(given) != len(END_KEYS):
        msg = f"Argument 'payload' must give all of {', '.join(END_KEYS)} or none, got {', '.join(given)}"
        raise ValueError(msg)
    value = reader_value(request)[2]
    if not value["present"] or "d1_mm" not in value:
        msg = "Diameter ends need a present new lesion with its d1_mm and d2_mm"
        raise ValueError(msg)
    points = {k: _world_point(request.payload, k) for k in END_KEYS}
    for name, (a, b) in (("d1_mm", ("d1_p0", "d1_p1")), ("d2_mm", ("d2_p0", "d2_p1"))):
        length = math.dist(points[a], points[b])
        if abs(length - value[name]) > END_LENGTH_TOLERANCE_MM:
            msg = (f"Argument '{name}' ({value[name]:g}) is not the distance between {a} and {b} "
                   f"({length:.2f} mm)")
            raise ValueError(msg)
    return {k: json.dumps(v) for k, v in points.items()}


def reader_value(request: BoardRequest) -> tuple[ReaderValueKind, int | None, dict]:
    """(value kind, lesion index or None, value) of a reader request; ValueError when malformed."""
    p, kind = request.payload, request.kind
    if not p["study_uid"]:
        msg = f"Argument 'study_uid' of a {kind} request must name the scan"
        raise ValueError(msg)
    if kind == RequestKind.ACCEPT_SEGMENTATION:
        return ReaderValueKind.SEGMENTATION, None, {"accepted": True}
    if kind == RequestKind.REJECT_SEGMENTATION:
        if not p["note"].strip():
            msg = "Argument 'note' must give the reason the segmentation is rejected"
            raise ValueError(msg)
        return ReaderValueKind.SEGMENTATION, None, {"accepted": False, "reason": p["note"].strip()}
    if kind == RequestKind.CHOOSE_TARGETS:
        try:
            ids = sorted({int(t) for t in p["track_ids"].split(",") if t.strip()})
        except ValueError as exc:
            msg = f"Argument 'track_ids' must be lesion numbers separated by commas, got {p['track_ids']!r}"
            raise ValueError(msg) from exc
        return ReaderValueKind.TARGETS, None, {"track_ids": ids}
    if kind == RequestKind.SET_DIAMETERS:
        d1, d2 = _number(p, "d1_mm"), _number(p, "d2_mm")
        if d2 > d1:
            msg = f"Argument 'd2_mm' ({d2:g}) must not exceed 'd1_mm' ({d1:g}): d1 is the longest diameter"
            raise ValueError(msg)
        return ReaderValueKind.DIAMETERS, int(_number(p, "lesion_index", minimum=1)), {"d1_mm": d1, "d2_mm": d2}
    if kind == RequestKind.RECORD_NEW_LESION:
        value: dict = {"present": _yes(p, "present")}
        if p.get("d1_mm") and p.get("d2_mm"):
            value.update(d1_mm=_number(p, "d1_mm"), d2_mm=_number(p, "d2_mm"))
        return ReaderValueKind.NEW_LESION, None, value
    if kind == RequestKind.RECORD_NONMEASURABLE_PROGRESSION:
        return ReaderValueKind.NONMEASURABLE_PROGRESSION, None, {"present": _yes(p, "present")}
    if kind == RequestKind.RECORD_STEROID_DOSE:
        return ReaderValueKind.STEROID_DOSE, None, {"mg": _number(p, "mg")}
    if kind == RequestKind.RECORD_CLINICAL_STATUS:
        return ReaderValueKind.CLINICAL_STATUS, None, {"status": ClinicalStatus(p["status"]).value}
    msg = f"A {kind} request records no reader value"
    raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class FailedRequest:
    request: BoardRequest
    reason: str


def requests_dir(state_dir: Path | str) -> Path:
    return Path(state_dir) / REQUESTS_DIR


def write_request(requests_dir: Path | str, request: BoardRequest) -> Path:
    """Append one request to the queue atomically and durably; returns its file."""
    folder = Path(requests_dir)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{request.requested_at:%Y%m%dT%H%M%S%f}-{request.request_id}.json"
    final = folder / name
    _write_atomically(final, request.to_json())
    return final


def pending_requests(requests_dir: Path | str) -> list[Path]:
    """The queued request files, oldest first."""
    folder = Path(requests_dir)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def queued_requests(requests_dir: Path | str) -> list[BoardRequest]:
    """The readable queued requests, oldest first (one the writer just took is simply left out)."""
    return [r for r in (_read(p) for p in pending_requests(requests_dir)) if r is not None]


def failed_requests(requests_dir: Path | str) -> list[FailedRequest]:
    """Requests the writer refused, with its reason, oldest first."""
    out = []
    for path in pending_requests(Path(requests_dir) / FAILED_DIR):
        try:
            text = path.read_text(encoding="utf-8")
            out.append(FailedRequest(BoardRequest.from_json(text), str(json.loads(text).get("failure", ""))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def park_failed(path: Path, reason: str) -> None:
    """Move a refused request file to ``failed/``, with the reason written into it."""
    target = path.parent / FAILED_DIR / path.name
    target.parent.mkdir(exist_ok=True)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        _write_atomically(target, json.dumps({**data, "failure": reason}, sort_keys=True))
        path.unlink(missing_ok=True)
    else:  # not even JSON: keep the bytes as they came
        os.replace(path, target)


def discard_stale_temporaries(requests_dir: Path | str, *, older_than_s: float = STALE_TEMP_S) -> int:
    """Remove temporary files a crashed writer of the queue left behind; returns how many."""
    folder = Path(requests_dir)
    if not folder.is_dir():
        return 0
    removed = 0
    for tmp in folder.glob(".*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def _read(path: Path) -> BoardRequest | None:
    try:
        return BoardRequest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_atomically(final: Path, text: str) -> None:
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    try:  # the rename itself survives a power cut once the folder is synced
        dir_fd = os.open(final.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
