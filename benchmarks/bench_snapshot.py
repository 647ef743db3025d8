"""Cost of publishing the dashboard's snapshot at 10,000 patients x 10 timepoints.

The store is generated from DataFrames (``bench_dashboard.generate_frames`` plus the series,
volumes, segmentations, registrations, lesions and alerts a store of that size also holds) and
bulk-inserted in one transaction. Then, alternating in every round on the same store:

- **baseline, today's copy**: ``engine.store.snapshot.copy_snapshot``, what every cycle did before
  publishing became conditional (CHECKPOINT, copy the whole file, ``os.replace``), on a store
  that did not change since the last copy (an idle cycle);
- **ours, unchanged**: ``publish_snapshot`` on the same unchanged store (the revision check only);
- **ours, changed**: ``publish_snapshot`` after one small committed change (an alert
  acknowledged; the change itself is not timed): check, CHECKPOINT, copy, ``os.replace``;
- **baseline, changed**: today's copy after the same small change, for the like-for-like ratio.

Also: what the change counter adds to every write transaction (the same one-row insert with and
without advancing the revision), and the one-off check of a restarted writer, which reads the
snapshot's revision from the file once. Copies are served from the OS page cache (the file was
just written), as they are on a writer that publishes every cycle.

Run: ``python -m benchmarks.bench_snapshot [--patients N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.bench_dashboard import N_TIMEPOINTS, generate_frames
from engine.store import Store, open_store, publish_snapshot
from engine.store.alerts import acknowledge
from engine.store.db import insert_frame
from engine.store.ingest import log_event
from engine.store.snapshot import copy_snapshot

N_PATIENTS = 10_000
ROUNDS = 15
NOW = datetime(2026, 1, 1)


def more_frames(studies: pd.DataFrame, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """The other per-study rows of a real store: 4 series and volumes, a segmentation, a
    registration, a lesion per study, and an alert for one study in ten."""
    uid = studies["study_uid"].to_numpy()
    patient = studies["patient_key"].to_numpy()
    n = len(uid)
    seqs = np.array(["T1", "T1c", "T2", "FLAIR"])
    s_uid, s_seq = np.repeat(uid, 4), np.tile(seqs, n)
    series_uid = np.char.add(np.char.add(s_uid.astype(str), "."), np.tile(np.arange(1, 5), n).astype(str))
    s_patient = np.repeat(patient, 4)
    series = pd.DataFrame({
        "series_uid": series_uid, "study_uid": s_uid, "archive_series_id": series_uid,
        "description": np.char.add("AX ", s_seq), "sequence": s_seq, "rule": "description-keyword",
        "explanation": "the series description names the sequence", "plane": "AXIAL", "n_instances": 176,
        "status": "USED", "reason": None})
    volumes = pd.DataFrame({
        "series_uid": series_uid, "study_uid": s_uid, "sequence": s_seq,
        "path": [f"{p}/{u}/{q}_{s}.nii.gz" for p, u, q, s in zip(s_patient, s_uid, s_seq, series_uid, strict=True)],
        "shape": "[256, 256, 176]", "spacing_mm": "[1.0, 1.0, 1.0]",
        "affine_ras": "[[-1,0,0,128],[0,-1,0,128],[0,0,1,-88],[0,0,0,1]]"})
    et = rng.gamma(2.0, 3.0, n)
    segmentations = pd.DataFrame({
        "study_uid": uid, "model_name": "gliowatch-unet", "model_version": "0.3.2", "weights_sha256": "a" * 64,
        "config_sha256": "b" * 64, "labels_path": [f"{p}/{u}/labels.nii.gz" for p, u in zip(patient, uid, strict=True)],
        "netc_ml": et * 0.3, "snfh_ml": et * 4, "et_ml": et, "rc_ml": 5.0, "flags": "", "device": "cpu",
        "elapsed_s": 5.1, "created_at": NOW, "superseded": False})
    registrations = pd.DataFrame({
        "study_uid": uid, "reference_study_uid": uid, "kind": "baseline",
        "matrix": "[[1,0,0,0.4],[0,1,0,-0.2],[0,0,1,0.1],[0,0,0,1]]", "method": "torch-rigid",
        "stage": "fine", "similarity": 0.6, "rotation_deg": 0.8, "translation_mm": 0.5, "passed": True,
        "qc_reason": "rotation 0.8 deg, translation 0.5 mm, similarity 0.60",
        "resampled": '{"T1c": "registered/T1c.nii.gz", "labels": "registered/labels.nii.gz"}',
        "elapsed_s": 3.0, "created_at": NOW, "superseded": False})
    lesions = pd.DataFrame({
        "measurement_id": uid, "study_uid": uid, "patient_key": patient, "lesion_index": 1, "track_id": 1,
        "volume_ml": et, "d1_mm": 20.0, "d2_mm": 15.0, "product_mm2": 300.0, "slice_index": 80, "n_slices": 12,
        "measurable": True, "is_target": True, "is_new": False, "outside_field": None, "note": None})
    pick = slice(None, None, 10)
    alerts = pd.DataFrame({
        "idempotency_key": np.char.add("k-", uid[pick].astype(str)), "alert_type": "ALERT_PPD",
        "severity": "WARNING", "patient_key": patient[pick], "study_uid": uid[pick], "study_date": None,
        "reason": "SPD +41 % over the nadir", "link": "/?patient=", "criteria": "RANO 2.0, criteria v1",
        "created_at": NOW})
    return {"series": series, "volumes": volumes, "segmentations": segmentations,
            "registrations": registrations, "lesions": lesions, "alerts": alerts}


def build_store(path: Path, n_patients: int) -> tuple[Store, float]:
    """The writer's store, filled by bulk inserts from DataFrames in one transaction."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(7)
    frames = generate_frames(n_patients, rng)
    frames |= more_frames(frames["studies"], rng)
    store = open_store(path)
    with store.transaction() as con:
        for table, frame in frames.items():
            insert_frame(con, table, frame)
    return store, time.perf_counter() - t0


def _change(store: Store, i: int) -> None:
    """One small change a reader sees: an alert acknowledged (as a tumour board action)."""
    with store.transaction() as con:
        if not acknowledge(con, i + 1, user="bench", note="seen", now=NOW):
            msg = f"alert {i + 1} was not acknowledged"
            raise RuntimeError(msg)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _publish_expecting(store: Store, snapshot: Path, *, published: bool) -> None:
    result = publish_snapshot(store, snapshot)
    if result.published != published:
        msg = f"publish_snapshot: expected published={published}, got {result}"
        raise RuntimeError(msg)


def _transaction_cost(store: Store, rounds: int) -> tuple[float, float]:
    """Median time of a one-row insert transaction with and without advancing the revision."""
    with_rev, without = [], []
    for i in range(rounds * 4):
        for visible, out in ((True, with_rev), (False, without)):
            def insert(visible: bool = visible, i: int = i) -> None:
                with store.transaction(visible=visible) as con:
                    log_event(con, "bench", f"row {i}")
            out.append(_timed(insert))
    return statistics.median(with_rev), statistics.median(without)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=N_PATIENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        path, snapshot = Path(tmp) / "gliowatch.duckdb", Path(tmp) / "gliowatch.snapshot.duckdb"
        store, build_s = build_store(path, args.patients)
        try:
            _publish_expecting(store, snapshot, published=True)
            print(f"store: {args.patients} patients x {N_TIMEPOINTS} timepoints, built in {build_s:.1f} s, "
                  f"snapshot {snapshot.stat().st_size / 1e6:.0f} MB")
            times: dict[str, list[float]] = {k: [] for k in ("copy_idle", "ours_unchanged", "ours_changed",
                                                             "copy_changed")}
            for i in range(args.rounds):
                times["copy_idle"].append(_timed(lambda: copy_snapshot(store, snapshot)))
                times["ours_unchanged"].append(_timed(lambda: _publish_expecting(store, snapshot, published=False)))
                _change(store, 2 * i)
                times["ours_changed"].append(_timed(lambda: _publish_expecting(store, snapshot, published=True)))
                _change(store, 2 * i + 1)
                times["copy_changed"].append(_timed(lambda: copy_snapshot(store, snapshot)))
            with_rev, without_rev = _transaction_cost(store, args.rounds)
            _publish_expecting(store, snapshot, published=True)
        finally:
            store.close()
        with open_store(path) as restarted:
            first_check = _timed(lambda: _publish_expecting(restarted, snapshot, published=False))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["copy_idle"]
    print(f"baseline, today's copy (unchanged store): median {_ms(base)}, max {_ms(max(times['copy_idle']))} "
          f"(n={args.rounds})")
    print(f"ours, unchanged store (check only):       median {_ms(med['ours_unchanged'])}, "
          f"max {_ms(max(times['ours_unchanged']))}; baseline/ours {base / med['ours_unchanged']:.0f}x")
    print(f"ours, changed store (check + copy):       median {_ms(med['ours_changed'])}; "
          f"baseline/ours {base / med['ours_changed']:.2f}x")
    print(f"baseline, today's copy (changed store):   median {_ms(med['copy_changed'])}; "
          f"like for like, today's/ours when changed {med['copy_changed'] / med['ours_changed']:.2f}x")
    print(f"write transaction (one-row insert) with the revision advanced: {_ms(with_rev)}, without: "
          f"{_ms(without_rev)} (+{_ms(with_rev - without_rev)} per transaction)")
    print(f"first check of a restarted writer (reads the snapshot's revision once): {_ms(first_check)}")
    return {**{f"{k}_median_s": v for k, v in med.items()},
            "ratio_unchanged": base / med["ours_unchanged"], "ratio_changed": base / med["ours_changed"],
            "revision_cost_s": with_rev - without_rev, "first_check_s": first_check}


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
