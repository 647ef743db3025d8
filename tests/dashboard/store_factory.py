"""A small GlioWatch state folder for the dashboard tests: a store, its snapshot, volumes, users.

Four patients whose worklist order is known by construction:
P-ALERT (an unacknowledged alert, preliminary PD), P-PPD (preliminary PD awaiting confirmation,
no alert), P-QUAR (a quarantined study), P-CALM (stable disease). :func:`add_urgency_patients` adds one
patient per worklist tier (a confirmed progression whose alerts are acknowledged or about to be,
a 2D/3D discordance, flagged scans reviewed or not, an INFO alert) for the ranking tests. P-ALERT has two studies with
registered T1c + label volumes; P-PPD has native volumes only (no registration rows). Files lie
where the pipeline writes them (``engine.state_paths``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

from engine.auth import add_user
from engine.dicom.nifti import write_nifti
from engine.settings import Settings
from engine.state_paths import StatePaths, StoredFile
from engine.store import open_store, publish_snapshot
from engine.store import board
from engine.types import Label, Volume

RADIOLOGIST = ("dr.test", "correct-horse-battery")
VIEWER = ("viewer.test", "viewer-password-1")
EXPECTED_ORDER = ("P-ALERT", "P-PPD", "P-QUAR", "P-CALM")
NOW = datetime(2025, 6, 1, 12, 0)
SHAPE = (24, 20, 10)
AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])



@dataclass(frozen=True, slots=True)
class Built:
    settings: Settings
    alert_id: int


def _ball(radius_vox: float, centre: tuple[float, float, float]) -> np.ndarray:
    i, j, k = np.indices(SHAPE, dtype=float)
    return ((i - centre[0]) ** 2 + (j - centre[1]) ** 2 + ((k - centre[2]) * 2) ** 2) <= radius_vox**2


def _volumes(paths: StatePaths, patient: str, study_uid: str, radius_vox: float) -> tuple[str, str]:
    """T1c (bright enhancing ball on a grey head) and labels (ET ball around a NETC core), written
    where ingestion and segmentation write them; returns their stored paths."""
    head = _ball(9, (12, 10, 5))
    et = _ball(radius_vox, (12, 10, 5))
    core = _ball(max(radius_vox - 1.5, 0), (12, 10, 5))
    t1c = np.where(head, 300.0, 0.0) + np.where(et, 500.0, 0.0)
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[et] = int(Label.ET)
    labels[core] = int(Label.NETC)
    t1c_rel = f"{patient}/{study_uid}/T1c_{study_uid}.1.nii.gz"
    labels_rel = f"{patient}/{study_uid}/labels.nii.gz"
    _write(Volume(t1c.astype(np.float32), AFFINE), paths.resolve(StoredFile.VOLUME, t1c_rel))
    _write(Volume(labels, AFFINE), paths.resolve(StoredFile.LABELS, labels_rel))
    return t1c_rel, labels_rel


def _write(volume: Volume, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(volume, target)


def _registered_copies(paths: StatePaths, patient: str, study_uid: str, t1c: str, labels: str) -> dict[str, str]:
    """The registration's resampled files (same grid already: copies of the native ones)."""
    copies = {}
    for name, kind, rel in (("T1c", StoredFile.VOLUME, t1c), ("labels", StoredFile.LABELS, labels)):
        target = paths.resolve(StoredFile.REGISTERED, f"{patient}/{study_uid}/{name}.nii.gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.resolve(kind, rel), target)
        copies[name] = paths.stored(StoredFile.REGISTERED, target)
    return copies


def build_state(state_dir: Path) -> Built:
    settings = Settings(state_dir=state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    add_user(state_dir / "users.toml", name=RADIOLOGIST[0], role="radiologist", password=RADIOLOGIST[1])
    add_user(state_dir / "users.toml", name=VIEWER[0], role="viewer", password=VIEWER[1])
    store = open_store(settings.db_path)
    con = store.con
    for statement in board.DDL:
        con.execute(statement)
    studies = [  # patient, study_uid, date, status, radius (voxels), response, final
        ("P-ALERT", "1.1", date(2025, 1, 10), "ASSESSED", 3.0, "BASELINE", "BASELINE"),
        ("P-ALERT", "1.2", date(2025, 3, 20), "ASSESSED", 5.0, "PRELIM_PD", "PRELIM_PD"),
        ("P-PPD", "2.1", date(2025, 2, 1), "ASSESSED", 3.0, "BASELINE", "BASELINE"),
        ("P-PPD", "2.2", date(2025, 4, 2), "ASSESSED", 4.5, "PRELIM_PD", "PRELIM_PD"),
        ("P-QUAR", "3.1", date(2025, 5, 5), "QUARANTINED", 0.0, None, None),
        ("P-CALM", "4.1", date(2025, 1, 5), "ASSESSED", 3.0, "BASELINE", "BASELINE"),
        ("P-CALM", "4.2", date(2025, 5, 20), "ASSESSED", 3.0, "SD", "SD"),
    ]
    for patient, uid, day, status, radius, response, final in studies:
        con.execute("INSERT INTO patients VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [patient, NOW, day])
        con.execute("""INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status,
                           sequences, seen_at, ingested_at) VALUES (?, ?, ?, ?, ?, 'T1c', ?, ?)""",
                    [uid, f"orthanc-{uid}", patient, day, status, NOW, NOW])
        if status == "QUARANTINED":
            con.execute("""INSERT INTO quarantine (study_uid, patient_key, stage, reason, created_at)
                           VALUES (?, ?, 'ingest', 'No post-contrast T1 series was found', ?)""",
                        [uid, patient, NOW])
            continue
        t1c, labels = _volumes(settings.state_paths, patient, uid, radius)
        con.execute("INSERT INTO volumes VALUES (?, ?, 'T1c', ?, ?, '[1,1,2]', ?)",
                    [f"{uid}.1", uid, t1c, json.dumps(SHAPE), json.dumps(AFFINE.tolist())])
        et_ml = float(_ball(radius, (12, 10, 5)).sum()) * 2 / 1000
        spd = round(3.14159 * (radius * 1.0) ** 2 * 1.3, 1)
        con.execute("""INSERT INTO measurements (measurement_id, study_uid, patient_key, scan_date, et_ml,
                           netc_ml, snfh_ml, rc_ml, spd_mm2, model_name, model_version, criteria_version,
                           computed_at) VALUES (?, ?, ?, ?, ?, 0.1, 2.0, 0.0, ?, 'gliowatch-unet', '0.1.0',
                           'RANO 2.0, criteria v1', ?)""", [f"m{uid}", uid, patient, day, et_ml, spd, NOW])
        con.execute("""INSERT INTO assessments (study_uid, patient_key, scan_date, profile, mode, criteria,
                           criteria_version, response, final_response, reason, nadir_burden, nadir_date,
                           assessed_at) VALUES (?, ?, ?, 'rano2', '2d', 'RANO 2.0, criteria v1', 1, ?, ?, ?,
                           ?, ?, ?)""",
                    [uid, patient, day, response, final, f"{response}: SPD {spd} mm² [test reason]",
                     28.3, date(2025, 1, 10), NOW])
        con.execute("""INSERT INTO segmentations (study_uid, model_name, model_version, weights_sha256,
                           labels_path, created_at) VALUES (?, 'gliowatch-unet', '0.1.0', 'abc', ?, ?)""",
                    [uid, labels, NOW])
        if patient == "P-ALERT":  # same grid already: the "resampled" files are the native ones
            con.execute("""INSERT INTO registrations (study_uid, reference_study_uid, kind, matrix, method,
                               passed, qc_reason, resampled, created_at)
                           VALUES (?, '1.1', 'baseline', '[]', 'identity', true, 'passed', ?, ?)""",
                        [uid, json.dumps({} if uid == "1.1" else
                                         _registered_copies(settings.state_paths, patient, uid, t1c, labels)),
                         NOW])
    con.execute("""INSERT INTO psp_risk VALUES ('1.2', 'P-ALERT', DATE '2025-03-20', 'rano2', '2d', 0.43,
                       0.28, 0.58, 0.43, 1.0, '{"mgmt": "unknown", "weeks_since_rt": 6.0}',
                       '[["weeks since RT <= 12", 1.0]]', 'literature-informed prior, not a trained
                       classifier', 'RANO 2.0, criteria v1', ?)""", [NOW])
    con.execute("""INSERT INTO growth (patient_key, label, model, evaluable, reason, n_points, crossing_date,
                       crossing_low, crossing_high, criteria, computed_at) VALUES ('P-ALERT', 'ET',
                       'exponential', true, 'fit on 2 points', 2, DATE '2025-07-01', DATE '2025-06-10',
                       DATE '2025-08-01', 'RANO 2.0, criteria v1', ?)""", [NOW])
    for patient, day, event, value in (("P-ALERT", date(2024, 12, 1), "RT_START", None),
                                       ("P-ALERT", date(2025, 1, 5), "RT_END", None),
                                       ("P-ALERT", date(2025, 2, 1), "CHEMO_CYCLE", "1"),
                                       ("P-ALERT", date(2025, 2, 1), "STEROID_DOSE", "4"),
                                       ("P-ALERT", date(2025, 1, 1), "MGMT", "methylated"),
                                       ("P-CALM", date(2025, 1, 1), "MGMT", "unmethylated")):
        con.execute("""INSERT INTO clinical_events VALUES (?, ?, ?, ?, 'test.csv', 'test', ?)""",
                    [patient, day, event, value, NOW])
    alert_id = con.execute(
        """INSERT INTO alerts (idempotency_key, alert_type, severity, patient_key, study_uid, study_date,
               reason, link, criteria, created_at) VALUES ('k1', 'ALERT_PPD', 'WARNING', 'P-ALERT', '1.2',
               DATE '2025-03-20', 'SPD +40 % over the nadir; P(PsP) 43 %', '/?patient=P-ALERT',
               'RANO 2.0, criteria v1', ?) RETURNING alert_id""", [NOW]).fetchone()[0]
    publish_snapshot(store, settings.snapshot_path)
    store.close()
    return Built(settings=settings, alert_id=int(alert_id))


#: the worklist after :func:`add_urgency_patients`, most urgent first (engine.urgency's rule).
URGENCY_ORDER = ("P-PROG", "P-ALERT", "P-PPD", "P-DISC", "P-FLAG", "P-QUAR", "P-INFO", "P-CALM", "P-REVIEWED")
#: the confirmed-progression patient's alerts: (alert_type, severity, acknowledged_by, note) at build.
PROG_ALERTS = (("ALERT_PD_CONFIRMED", "CRITICAL", None, None),
               ("ALERT_PPD", "WARNING", "dr.earlier", "repeat MRI booked"))


def add_urgency_patients(settings: Settings) -> dict[str, int]:
    """Add one patient per urgency tier to the store and republish; returns {alert_type: alert_id}
    of P-PROG's alerts. P-PROG: PD confirmed in March, a later NE scan (the engine calls scans after
    PD "NE"), its CRITICAL alert open, its earlier WARNING acknowledged."""
    scans = [  # patient, study_uid, date, response, final, segmentation flags
        ("P-PROG", "5.1", date(2025, 1, 8), "BASELINE", "BASELINE", ""),
        ("P-PROG", "5.2", date(2025, 2, 15), "PRELIM_PD", "PD", ""),
        ("P-PROG", "5.3", date(2025, 3, 30), "PD", "PD", ""),
        ("P-PROG", "5.4", date(2025, 5, 25), "NE", "NE", ""),
        ("P-DISC", "6.1", date(2025, 1, 12), "BASELINE", "BASELINE", ""),
        ("P-DISC", "6.2", date(2025, 5, 10), "DISCORDANT", "DISCORDANT", ""),
        ("P-FLAG", "7.1", date(2025, 1, 15), "BASELINE", "BASELINE", ""),
        ("P-FLAG", "7.2", date(2025, 5, 15), "SD", "SD", "et_without_enhancement"),
        ("P-REVIEWED", "8.1", date(2025, 1, 3), "BASELINE", "BASELINE", ""),
        ("P-REVIEWED", "8.2", date(2025, 5, 1), "SD", "SD", "implausible_jump"),
        ("P-INFO", "9.1", date(2025, 1, 20), "BASELINE", "BASELINE", ""),
        ("P-INFO", "9.2", date(2025, 4, 20), "STEROID_WATCH", "STEROID_WATCH", ""),
    ]
    ids: dict[str, int] = {}
    with open_store(settings.db_path) as store:
        with store.transaction() as con:
            _add_urgency_rows(con, scans, ids)
        publish_snapshot(store, settings.snapshot_path)
    return ids


def _add_urgency_rows(con, scans: list[tuple], ids: dict[str, int]) -> None:  # noqa: ANN001
    for patient, uid, day, response, final, flags in scans:
        con.execute("INSERT INTO patients VALUES (?, ?, ?) ON CONFLICT DO NOTHING", [patient, NOW, day])
        con.execute("""INSERT INTO studies (study_uid, archive_study_id, patient_key, study_date, status,
                           sequences, seen_at, ingested_at) VALUES (?, ?, ?, ?, 'ASSESSED', 'T1c', ?, ?)""",
                    [uid, f"orthanc-{uid}", patient, day, NOW, NOW])
        con.execute("""INSERT INTO assessments (study_uid, patient_key, scan_date, profile, mode, criteria,
                           criteria_version, response, final_response, reason, assessed_at)
                       VALUES (?, ?, ?, 'rano2', '2d', 'RANO 2.0, criteria v2', 2, ?, ?, ?, ?)""",
                    [uid, patient, day, response, final, f"{response}: [test reason]", NOW])
        con.execute("""INSERT INTO segmentations (study_uid, model_name, model_version, weights_sha256,
                           labels_path, flags, created_at) VALUES (?, 'gliowatch-unet', '0.1.0', 'abc',
                           ?, ?, ?)""", [uid, f"{patient}/{uid}/labels.nii.gz", flags, NOW])
    con.execute("""INSERT INTO board_decisions (patient_key, study_uid, decision, note, decided_by,
                       decided_at, request_id) VALUES ('P-REVIEWED', '8.2', 'CONTINUE_SURVEILLANCE',
                       'flag seen: segmentation fine', 'dr.test', ?, 'req-reviewed')""", [NOW])
    alerts = [("P-PROG", "5.3", date(2025, 3, 30), *PROG_ALERTS[0]),
              ("P-PROG", "5.2", date(2025, 2, 15), *PROG_ALERTS[1]),
              ("P-INFO", "9.2", date(2025, 4, 20), "ALERT_STEROID_ONLY", "INFO", None, None)]
    for patient, uid, day, kind, severity, by, note in alerts:
        ids[kind if patient == "P-PROG" else f"{patient}:{kind}"] = con.execute(
            """INSERT INTO alerts (idempotency_key, alert_type, severity, patient_key, study_uid,
                   study_date, reason, link, criteria, created_at, acknowledged_at, acknowledged_by,
                   acknowledged_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'RANO 2.0, criteria v2', ?, ?, ?, ?)
               RETURNING alert_id""",
            [f"{patient}-{kind}", kind, severity, patient, uid, day, f"{kind} on {day} [test reason]",
             f"/?patient={patient}", NOW, NOW if by else None, by, note]).fetchone()[0]
