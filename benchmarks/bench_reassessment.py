"""Cost of assessing a patient after one more study, against the length of its history (issue 34).

For each history length N (2, 5, 10, 20 timepoints; N >= 2) one patient's course is built in a real
DuckDB store (``tests/course_factory.py``: label maps of 96 x 96 x 72 1 mm voxels, each study
segmented and registered to the baseline as the pipeline records it) and assessed. Then, in every
round, on the same store:

- **ours, one study added**: timepoint N is recorded again (a new segmentation row, i.e. a
  changed study, with the same label map at every N: timepoint 1's, so its own cost does not
  change with N) and ``assess_patient_course`` runs: it measures that study (and reads the
  baseline's labels to track it) and keeps the stored measurements of the others;
- **baseline, today's full re-measure**: the stored fingerprints are cleared first (not timed),
  so ``assess_patient_course`` reads and measures every label map of the patient, as every
  assessment did before fingerprints existed.

Both then run the same response, PsP, growth and alert steps over the whole course. Printed per
N: the median of each path's wall time and CPU time (this process, all its threads: steadier than
wall time on a shared machine), i.e. the cost of one added study, and the ratio of each path at
20 to 2 timepoints (target for ours: within 1.5x).

Run: ``python -m benchmarks.bench_reassessment [--rounds R] [--lengths 2,5,10,20]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.criteria import Mode, Profile, load_criteria
from engine.state_paths import StatePaths
from engine.store import Store, open_store
from engine.usecases.patient_course import assess_patient_course
from tests.course_factory import PATIENT, add_study, record_rt_end, study_uid

LENGTHS = (2, 5, 10, 20)
ROUNDS = 5
#: the label map every added study gets (timepoint 1's), so the added study costs the same at every N
ADDED_PATTERN = 1
CRITERIA = load_criteria(Profile.RANO2)


def _assess(store: Store, paths: StatePaths) -> tuple[float, float]:
    """(wall s, CPU s of this process, all its threads) of one assessment."""
    t0, c0 = time.perf_counter(), time.process_time()
    assess_patient_course(store, patient_key=PATIENT, criteria=CRITERIA, mode=Mode.TWO_D, paths=paths,
                          alert_sinks=("dashboard",), base_url="http://127.0.0.1:8501")
    return time.perf_counter() - t0, time.process_time() - c0


def measure(n: int, rounds: int, work: Path) -> dict[str, float]:
    paths = StatePaths.under(work)
    with open_store(work / "g.duckdb") as store:
        record_rt_end(store)
        for t in range(n):
            add_study(store, paths, t, baseline_uid=None if t == 0 else study_uid(0))
        _assess(store, paths)
        ours: list[tuple[float, float]] = []
        full: list[tuple[float, float]] = []
        for _ in range(rounds):  # alternating, so both paths see the same load on the machine
            add_study(store, paths, n - 1, baseline_uid=study_uid(0), pattern=ADDED_PATTERN)
            ours.append(_assess(store, paths))
            store.con.execute("UPDATE measurements SET inputs_sha256 = NULL")  # today's path: measure all
            full.append(_assess(store, paths))
        written = int(store.query("SELECT count(*) FROM measurements")[0][0])
    expected = n + rounds * (1 + n)  # first pass n, then per round: the added study + the full re-measure
    if written != expected:
        msg = f"{n} timepoints: {written} measurements written, expected {expected}"
        raise RuntimeError(msg)
    return {"ours": statistics.median(w for w, _ in ours), "full": statistics.median(w for w, _ in full),
            "ours_cpu": statistics.median(c for _, c in ours), "full_cpu": statistics.median(c for _, c in full)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    args = parser.parse_args(argv if argv is not None else [])
    lengths = [int(x) for x in args.lengths.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="gliowatch-reassess-") as tmp:
        for n in lengths:
            results[n] = measure(n, args.rounds, Path(tmp) / f"n{n}")
            r = results[n]
            print(f"{n:3d} timepoints: ours (one study added) {r['ours']:6.2f} s wall {r['ours_cpu']:6.2f} s CPU   "
                  f"baseline (re-measure all) {r['full']:6.2f} s wall {r['full_cpu']:6.2f} s CPU   "
                  f"baseline/ours {r['full'] / r['ours']:5.2f}x wall {r['full_cpu'] / r['ours_cpu']:5.2f}x CPU",
                  flush=True)
    lo, hi = min(lengths), max(lengths)
    if lo != hi:
        for name, key in (("ours", "ours"), ("baseline", "full")):
            for clock, k in (("wall", key), ("CPU", f"{key}_cpu")):
                ratio = results[hi][k] / results[lo][k]
                per = (results[hi][k] - results[lo][k]) / (hi - lo)
                print(f"{name} ({clock}): {hi} vs {lo} timepoints {ratio:.2f}x; {per:+.3f} s per timepoint of history")


if __name__ == "__main__":
    main(sys.argv[1:])
