"""Timeline render time for one patient in a store of 10,000 patients x 10 timepoints.

The store is generated from DataFrames (rows in scan-date order, interleaved across patients, as
a stream would write them), written to a DuckDB file and published as the read-only snapshot.
"Render" = what the dashboard does on an uncached patient view, server side: open the snapshot
read-only, run every per-patient query of the timeline page (``dashboard.data.patient_bundle``'s
queries) and build the plotly figure and serialise it to JSON (what Streamlit sends). The browser's
drawing time is not included.

Baseline, same run, same store: the full-table scan — read the whole ``timeline`` view and the
whole ``clinical_events`` table into pandas, filter the patient in pandas, build the same figure.
Also reported: the per-patient query through the ``timeline`` view (filter above its window
functions) vs the pushdown query the dashboard's read model
(``engine.store.read_model.read_timeline``) runs.

Run: ``python -m benchmarks.bench_dashboard [--patients N]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.timeline_figure import build_timeline_figure
from engine.store import open_store, publish_snapshot
from engine.store import board, read_model

N_PATIENTS = 10_000
N_TIMEPOINTS = 10
N_SAMPLES = 25
NOW = datetime(2026, 1, 1)
RESPONSES = np.array(["SD", "SD", "SD", "PR", "PRELIM_PD", "PD", "CR", "STEROID_WATCH"])


def generate_frames(n_patients: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    """Plausible-looking rows for every table the timeline reads (values are random, not clinical)."""
    n = n_patients * N_TIMEPOINTS
    keys = np.array([f"P-{i:06d}" for i in range(n_patients)])
    patient = np.repeat(keys, N_TIMEPOINTS)
    visit = np.tile(np.arange(N_TIMEPOINTS), n_patients)
    start = np.repeat(rng.integers(0, 1500, n_patients), N_TIMEPOINTS)
    scan = pd.to_datetime(date(2020, 1, 1)) + pd.to_timedelta(start + visit * 70, unit="D")
    uid = np.array([f"1.2.826.0.1.{i}" for i in range(n)])
    order = np.argsort(scan.values, kind="stable")  # a stream writes in time order
    et = rng.gamma(2.0, 3.0, n)
    studies = pd.DataFrame({
        "study_uid": uid, "archive_study_id": uid, "patient_key": patient, "study_date": scan.date,
        "status": "ASSESSED", "revision": 1, "sequences": "T1,T1c,T2,FLAIR", "missing_sequences": "",
        "previous_study_uid": None, "change_seq": np.arange(n), "seen_at": NOW, "ingested_at": NOW,
        "ingest_s": 1.0}).iloc[order]
    measurements = pd.DataFrame({
        "measurement_id": uid, "study_uid": uid, "patient_key": patient, "scan_date": scan.date,
        "et_ml": et, "netc_ml": et * 0.3, "snfh_ml": et * 4, "rc_ml": 5.0, "tc_ml": et * 1.3,
        "wt_ml": et * 5.3, "spd_mm2": et * 90, "sov_target_ml": et, "sov_all_ml": et, "n_lesions": 1,
        "n_measurable": 1, "n_targets": 1, "slice_thickness_mm": 1.0, "min_diameter_mm": 10.0,
        "obliquity_deg": 0.0, "model_name": "gliowatch-unet", "model_version": "0.1.0",
        "weights_sha256": "0" * 64, "criteria_version": "RANO 2.0, criteria v1", "registration_id": None,
        "superseded": False, "computed_at": NOW}).iloc[order]
    response = np.where(visit == 0, "BASELINE", rng.choice(RESPONSES, n))
    assessments = pd.DataFrame({
        "study_uid": uid, "patient_key": patient, "scan_date": scan.date, "profile": "rano2", "mode": "2d",
        "criteria": "RANO 2.0, criteria v1", "criteria_version": 1, "response": response,
        "final_response": response, "pd_date": None,
        "reason": [f"SPD {v:,.0f} mm² [RANO 2.0, criteria v1]" for v in et * 90],
        "final_reason": None, "burden": et * 90, "baseline_burden": 100.0, "baseline_date": scan.date,
        "nadir_burden": 90.0, "nadir_date": scan.date, "change_vs_baseline": 0.1, "change_vs_nadir": 0.2,
        "weeks_post_rt": visit * 10.0, "measurement_id": uid, "assessed_at": NOW}).iloc[order]
    ppd = response == "PRELIM_PD"
    psp = pd.DataFrame({
        "study_uid": uid[ppd], "patient_key": patient[ppd], "scan_date": scan.date[ppd], "profile": "rano2",
        "mode": "2d", "probability": 0.43, "low": 0.28, "high": 0.58, "base_probability": 0.43,
        "combined_multiplier": 1.0, "inputs_json": '{"mgmt": "unknown"}', "multipliers_json": "[]",
        "model": "literature-informed prior", "criteria": "RANO 2.0, criteria v1", "computed_at": NOW})
    first = pd.to_datetime(date(2020, 1, 1)) + pd.to_timedelta(start[::N_TIMEPOINTS], unit="D")
    ev_rows = []
    for offset, event, value in ((-120, "SURGERY", "GTR"), (-90, "RT_START", None), (-48, "RT_END", None),
                                 (-90, "CHEMO_START", None), (-30, "CHEMO_CYCLE", "1"),
                                 (0, "CHEMO_CYCLE", "2"), (-90, "STEROID_DOSE", "4"), (-1, "MGMT", "methylated")):
        ev_rows.append(pd.DataFrame({"patient_key": keys, "event_date": (first + timedelta(days=offset)).date,
                                     "event": event, "value": value, "source": "bench.csv",
                                     "entered_by": "bench", "entered_at": NOW}))
    events = pd.concat(ev_rows).sample(frac=1.0, random_state=1)
    growth = pd.DataFrame({
        "patient_key": keys, "label": "ET", "model": "exponential", "evaluable": True, "reason": "fit",
        "n_points": 4, "nadir_date": first.date, "nadir_ml": 1.0, "sgr_per_day": 0.01, "vdt_days": 70.0,
        "params_json": "{}", "threshold_ml": 1.4, "crossing_date": (first + timedelta(days=900)).date,
        "crossing_low": (first + timedelta(days=800)).date, "crossing_high": (first + timedelta(days=1000)).date,
        "interval_method": "covariance", "already_crossed": False, "criteria": "RANO 2.0, criteria v1",
        "computed_at": NOW})
    patients = pd.DataFrame({"patient_key": keys, "first_seen_at": NOW, "last_study_date": None})
    return {"patients": patients, "studies": studies, "measurements": measurements,
            "assessments": assessments, "psp_risk": psp, "clinical_events": events, "growth": growth}


def build_store(folder: Path, n_patients: int) -> tuple[Path, float]:
    t0 = time.perf_counter()
    frames = generate_frames(n_patients, np.random.default_rng(7))
    store = open_store(folder / "gliowatch.duckdb")
    for statement in board.DDL:
        store.con.execute(statement)
    for table, frame in frames.items():
        store.con.register("frame", frame)
        columns = ", ".join(frame.columns)
        store.con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM frame")
        store.con.unregister("frame")
    snapshot = publish_snapshot(store, folder / "gliowatch.snapshot.duckdb").path
    store.close()
    return snapshot, time.perf_counter() - t0


def render_ours(snapshot: Path, patient_key: str) -> int:
    with open_store(snapshot, read_only=True) as store:
        timeline = read_model.read_timeline(store, patient_key)
        events = read_model.read_events(store, patient_key)
        read_model.read_alerts(store, patient_key)
        read_model.read_patient_table(store, "psp_risk", patient_key)
        growth = read_model.read_patient_table(store, "growth", patient_key)
        nadir = read_model.read_nadir(store, patient_key)
        read_model.read_image_sources(store, patient_key)
    return len(build_timeline_figure(timeline, events, growth=growth, nadir=nadir).to_json())


def render_full_scan(snapshot: Path, patient_key: str) -> int:
    with open_store(snapshot, read_only=True) as store:
        timeline_all = store.con.sql("SELECT * FROM timeline").to_arrow_table().to_pandas()
        events_all = store.con.sql("SELECT * FROM clinical_events").to_arrow_table().to_pandas()
        growth_all = store.con.sql("SELECT * FROM growth").to_arrow_table().to_pandas()
    timeline = timeline_all[timeline_all["patient_key"] == patient_key].sort_values("scan_date")
    events = events_all[events_all["patient_key"] == patient_key].sort_values(["event_date", "event"])
    growth = growth_all[growth_all["patient_key"] == patient_key]
    return len(build_timeline_figure(timeline, events[["event_date", "event", "value"]], growth=growth).to_json())


def query_via_view(snapshot: Path, patient_key: str) -> int:
    with open_store(snapshot, read_only=True) as store:
        return len(store.con.sql("SELECT * FROM timeline WHERE patient_key = ? ORDER BY scan_date",
                                 params=[patient_key]).fetchall())


def query_pushdown(snapshot: Path, patient_key: str) -> int:
    with open_store(snapshot, read_only=True) as store:
        return len(read_model.read_timeline(store, patient_key))


def _timed(fn, snapshot: Path, keys: list[str]) -> list[float]:  # noqa: ANN001
    times = []
    for key in keys:
        t0 = time.perf_counter()
        fn(snapshot, key)
        times.append(time.perf_counter() - t0)
    return times


def _summary(times: list[float]) -> str:
    return (f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
            f"(n={len(times)})")


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=N_PATIENTS)
    args = parser.parse_args(argv if argv is not None else [])
    with tempfile.TemporaryDirectory() as tmp:
        snapshot, build_s = build_store(Path(tmp), args.patients)
        size_mb = snapshot.stat().st_size / 1e6
        print(f"store: {args.patients} patients x {N_TIMEPOINTS} timepoints, built in {build_s:.1f} s, "
              f"snapshot {size_mb:.0f} MB")
        keys = [f"P-{i:06d}" for i in np.random.default_rng(3).integers(0, args.patients, N_SAMPLES)]
        render_ours(snapshot, keys[0])  # warm imports and the OS file cache for both paths
        render_full_scan(snapshot, keys[0])
        ours = _timed(render_ours, snapshot, keys)
        full = _timed(render_full_scan, snapshot, keys[:5])
        view = _timed(query_via_view, snapshot, keys)
        push = _timed(query_pushdown, snapshot, keys)
    ratio = statistics.median(full) / statistics.median(ours)
    print(f"timeline render, ours (pushdown queries + figure + JSON): {_summary(ours)}")
    print(f"timeline render, baseline full-table scan + pandas filter: {_summary(full)}")
    print(f"ratio baseline/ours: {ratio:.1f}x (target: ours <= 1000 ms)")
    print(f"timeline query only, through the view: {_summary(view)}; pushdown: {_summary(push)}; "
          f"ratio {statistics.median(view) / statistics.median(push):.1f}x")
    return {"ours_median_s": statistics.median(ours), "ours_max_s": max(ours),
            "full_scan_median_s": statistics.median(full), "ratio": ratio}


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
