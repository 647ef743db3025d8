"""What leaves the building: the JSON body and the e-mail text of an alert, PHI-free by default.

By default a payload holds the pseudonymous patient key, dates, the category, the reason, whether
it rests on proposed, confirmed or rejected values (``values_basis``) and the dashboard link - nothing from a DICOM header. DICOM UIDs are identifiers too (the DICOM
de-identification profile replaces them), so the study UID is added only when
``PrivacySettings.allowed_identifiers`` lists ``StudyInstanceUID``, and any UID-shaped text in a
reason is masked otherwise. The store holds no names, MRNs or birth dates, so there is nothing
more to allow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from engine.alerts.alert import AlertMessage

SCHEMA = "gliowatch.alert/1"
STUDY_UID_TAG = "StudyInstanceUID"
_UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")


def mask_uids(text: str) -> str:
    """Replace DICOM-UID-shaped text (four or more dotted numbers) with ``<uid>``.

    >>> mask_uids("series 'AX T1' (1.2.826.0.1.3680043.8.498.1) refused; SPD 1.5 mm2")
    "series 'AX T1' (<uid>) refused; SPD 1.5 mm2"
    """
    return _UID.sub("<uid>", text)


def alert_payload(message: AlertMessage, *, allowed_identifiers: Iterable[str] = ()) -> dict[str, Any]:
    """The webhook body: the alert, its delivery key (receivers dedupe on it) and nothing else."""
    allowed = set(allowed_identifiers)
    reason = message.reason if STUDY_UID_TAG in allowed else mask_uids(message.reason)
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "delivery_key": message.delivery_key,
        "idempotency_key": message.idempotency_key,
        "alert_id": message.alert_id,
        "kind": str(message.kind),
        "alert_type": str(message.alert_type),
        "severity": str(message.severity),
        "patient_key": message.patient_key,
        "study_date": message.study_date.isoformat() if message.study_date else None,
        "created_at": message.created_at.isoformat(timespec="seconds") + "Z",
        "reason": reason,
        "values_basis": str(message.values_basis),
        "link": message.link,
    }
    if STUDY_UID_TAG in allowed:
        body["study_uid"] = message.study_uid
    return body


def payload_bytes(message: AlertMessage, *, allowed_identifiers: Iterable[str] = ()) -> bytes:
    """Canonical JSON (sorted keys, no spaces): the exact bytes that are signed and sent."""
    body = alert_payload(message, allowed_identifiers=allowed_identifiers)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def alert_text(message: AlertMessage, *, allowed_identifiers: Iterable[str] = ()) -> str:
    """The plain-text e-mail body."""
    body = alert_payload(message, allowed_identifiers=allowed_identifiers)
    lines = [
        "ESCALATION: this alert has not been acknowledged." if body["kind"] == "ESCALATION" else "",
        f"{body['severity']} {body['alert_type']}",
        f"Patient: {body['patient_key']}",
        f"MRI date: {body['study_date'] or 'unknown'}",
        f"Reason: {body['reason']}",
        f"Rests on: {message.values_basis.wording}",
        f"Open: {body['link']}",
    ]
    if "study_uid" in body:
        lines.append(f"Study UID: {body['study_uid']}")
    lines += ["", f"Alert {body['alert_id']}, raised {body['created_at']}; delivery key {body['delivery_key']}.",
              "Acknowledge it on the dashboard to stop escalation."]
    return "\n".join(line for line in lines if line is not None).lstrip("\n") + "\n"
