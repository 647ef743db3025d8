"""Proof 1: malformed input never stops the stream and never loses what is stored.

A good study is ingested first. Then every file of ``../shared/dicom-corpus/failing`` and the
mutated DICOM of :mod:`tests.malformed` go to the real Orthanc (what Orthanc refuses is counted
as refused at the door) and the stream runs over all of it. Every study that reached Orthanc
must end up in the store, ingested or quarantined; every refused series must be named in a
quarantine reason; the good study's rows and NIfTI files must be unchanged.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
import requests

from engine.archive.orthanc import OrthancArchive
from engine.settings import Settings
from engine.store import open_store
from tests.integration.test_reliability_harness import upload_raw
from tests.integration.test_stream import cycle, upload
from tests.dicom_factory import write_study
from tests.malformed import MUTATIONS, MutationCase, write_case, write_cases
from tests.support import write_reliability_summary

pytestmark = pytest.mark.integration

#: kinds that stopped the stream before the engine fixes (now regression tests, see
#: docs/RELIABILITY.md "Bugs found"); they are part of the sweep as well
REGRESSION_KINDS = ("reused_series_uid", "overflowing_integer_string")
SWEEP_KINDS = list(MUTATIONS)

GOOD_STUDY_SQL = {
    "studies": "SELECT * EXCLUDE (previous_study_uid) FROM studies WHERE study_uid = ?",
    "series": "SELECT * FROM series WHERE study_uid = ? ORDER BY series_uid",
    "volumes": "SELECT * FROM volumes WHERE study_uid = ? ORDER BY series_uid",
}


def _fingerprint(store, settings: Settings, study_uid: str) -> dict:  # noqa: ANN001
    rows = {name: store.query_dicts(sql, [study_uid]) for name, sql in GOOD_STUDY_SQL.items()}
    files = {v["path"]: hashlib.sha256((settings.volumes_dir / v["path"]).read_bytes()).hexdigest()
             for v in rows["volumes"]}
    return {"rows": json.loads(json.dumps(rows, default=str)), "files": files}


def _wait_all_stable(archive: OrthancArchive, timeout_s: float = 60.0) -> list[str]:
    """Every study in Orthanc has had its StableStudy change."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        studies = set(archive.list_studies())
        stable = {c.resource_id for c in archive.changes(since=0, limit=100000).changes
                  if c.change_type == "StableStudy"}
        if studies <= stable:
            return sorted(studies)
        time.sleep(0.3)
    pytest.fail(f"{len(studies - stable)} studies never became stable within {timeout_s} s")


def run_sweep(archive: OrthancArchive, settings: Settings, tmp_path: Path, shared_dir: Path,
              *, n_mutated_files: int, seed: int) -> dict:
    good_uid, good_files = write_study(tmp_path / "good", patient_id="MRN-GOOD", study_date=date(2025, 1, 2),
                                       shape=(16, 16, 8))
    upload(archive, good_files)
    _wait_all_stable(archive)
    with open_store(settings.db_path) as store:
        first = cycle(archive, settings, store)
        assert first.ingested == [good_uid]
        before = _fingerprint(store, settings, good_uid)
        good_t1c = store.query("SELECT series_uid FROM series WHERE study_uid = ? AND sequence = 'T1c'",
                               [good_uid])[0][0]

    corpus = sorted(p for p in (shared_dir / "dicom-corpus" / "failing").rglob("*.dcm"))
    cases = write_cases(tmp_path / "mutated", n_files=n_mutated_files, seed=seed, reuse_series_uid=good_t1c,
                        kinds=SWEEP_KINDS)
    mutated = [f for c in cases for f in c.files if f.parent.name == "mutated"]
    assert len(mutated) >= n_mutated_files
    outcomes = {}
    with requests.Session() as http:
        for path in corpus + [f for c in cases for f in c.files]:
            outcomes[path] = upload_raw(settings, path, http)
    archive_ids = _wait_all_stable(archive)

    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store, reconcile=True)  # any exception here is a crash
        again = cycle(archive, settings, store, reconcile=True)
        assert again.ingested == [] and again.quarantined == [] and again.reconciled == 0
        studies = {r["archive_study_id"]: r for r in store.query_dicts("SELECT * FROM studies")}
        series = {(r["study_uid"], r["series_uid"]): r for r in store.query_dicts("SELECT * FROM series")}
        quarantine = store.query_dicts("SELECT * FROM quarantine")
        after = _fingerprint(store, settings, good_uid)

    assert after == before, "the good study stored before the sweep changed"
    unaccounted = [sid for sid in archive_ids if sid not in studies
                   and not any(q["archive_study_id"] == sid for q in quarantine)]
    assert unaccounted == [], f"{len(unaccounted)} studies in Orthanc are neither ingested nor quarantined"
    for sid in archive_ids:
        if sid in studies:
            assert studies[sid]["status"] in {"INGESTED", "QUARANTINED"}
            if studies[sid]["status"] == "QUARANTINED":  # the reason names every series of the study
                uid = studies[sid]["study_uid"]
                reasons = " ".join(q["reason"] for q in quarantine if q["study_uid"] == uid)
                assert reasons, studies[sid]
                for s in (s for s in series.values() if s["study_uid"] == uid):
                    assert s["series_uid"] in reasons or (s["description"] and s["description"] in reasons), s
    for s in series.values():  # every refused series is named in a quarantine reason of its study
        if s["status"] == "REFUSED":
            reasons = [q["reason"] for q in quarantine if q["study_uid"] == s["study_uid"]]
            assert any(s["series_uid"] in r or (s["description"] and s["description"] in r) for r in reasons), s
    return _summary(cases, corpus, outcomes, studies, series, quarantine, report)


def _summary(cases: list[MutationCase], corpus: list[Path], outcomes: dict, studies: dict, series: dict,
             quarantine: list[dict], report) -> dict:  # noqa: ANN001
    by_uid = {r["study_uid"]: r for r in studies.values()}
    per_kind: dict[str, Counter] = {}
    for case in cases:
        files = [f for f in case.files if f.parent.name == "mutated"]
        refused = sum(outcomes[f].status == "refused" for f in files)
        dup = sum(outcomes[f].status == "AlreadyStored" for f in files)
        study = by_uid.get(case.study_uid)
        s = series.get((case.study_uid, case.series_uid))
        own = s is not None
        if study is None:
            outcome = "refused at the door" if refused == len(files) else "study absent"
        else:
            outcome = f"study {study['status'].lower()}, series " + (s["status"].lower() if own else "absent")
        c = per_kind.setdefault(case.kind, Counter())
        c["cases"] += 1
        c["files"] += len(files)
        c["files refused at the door"] += refused
        c["files AlreadyStored"] += dup
        c[outcome] += 1
    corpus_refused = sum(outcomes[p].status == "refused" for p in corpus)
    return {
        "corpus_files": len(corpus),
        "corpus_files_refused_at_door": corpus_refused,
        "mutated_cases": len(cases),
        "mutated_files": sum(c["files"] for c in per_kind.values()),
        "mutated_files_refused_at_door": sum(c["files refused at the door"] for c in per_kind.values()),
        "studies_in_store": len(studies),
        "studies_ingested": sum(r["status"] == "INGESTED" for r in studies.values()),
        "studies_quarantined": sum(r["status"] == "QUARANTINED" for r in studies.values()),
        "quarantine_rows": len(quarantine),
        "cycle": report.summary(),
        "per_kind": {k: dict(v) for k, v in sorted(per_kind.items())},
    }


def test_malformed_sweep_short(archive: OrthancArchive, settings: Settings, tmp_path: Path,
                               shared_dir: Path, artifacts_dir: Path) -> None:
    summary = run_sweep(archive, settings, tmp_path, shared_dir, n_mutated_files=60, seed=8)
    write_reliability_summary(artifacts_dir, "malformed-short.json", summary)
    assert summary["mutated_files"] >= 60


@pytest.mark.slow
def test_malformed_sweep_1000_files(archive: OrthancArchive, settings: Settings, tmp_path: Path,
                                    shared_dir: Path, artifacts_dir: Path) -> None:
    summary = run_sweep(archive, settings, tmp_path, shared_dir, n_mutated_files=1000, seed=2026)
    write_reliability_summary(artifacts_dir, "malformed-slow.json", summary)
    assert summary["mutated_files"] >= 1000


@pytest.mark.parametrize("kind", REGRESSION_KINDS)
def test_known_bug_kind_does_not_stop_the_stream(kind: str, archive: OrthancArchive, settings: Settings,
                                                 tmp_path: Path) -> None:
    good_uid, good = write_study(tmp_path / "good", patient_id="MRN-GOOD", study_date=date(2025, 1, 2),
                                 sequences=("T1c",))
    upload(archive, good)
    _wait_all_stable(archive)
    with open_store(settings.db_path) as store:
        assert cycle(archive, settings, store).ingested == [good_uid]
        before = _fingerprint(store, settings, good_uid)
        reused = store.query("SELECT series_uid FROM series WHERE study_uid = ?", [good_uid])[0][0]
    case = write_case(tmp_path / "case", index=1, kind=kind, rng=random.Random(1), reuse_series_uid=reused)
    upload(archive, list(case.files))
    _wait_all_stable(archive)
    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store, reconcile=True)  # raised before the fix: the stream stopped
        assert case.study_uid in report.ingested + report.quarantined
        assert _fingerprint(store, settings, good_uid) == before


def test_quarantine_reason_names_series_that_are_not_mr(archive: OrthancArchive, settings: Settings,
                                                        tmp_path: Path, shared_dir: Path) -> None:
    folder = shared_dir / "dicom-corpus" / "failing" / "gantrytilting" / "001"  # a CT series
    upload(archive, sorted(folder.glob("*.dcm")))
    _wait_all_stable(archive)
    with open_store(settings.db_path) as store:
        report = cycle(archive, settings, store)
        assert len(report.quarantined) == 1
        series_uid = store.query("SELECT series_uid FROM series")[0][0]
        reasons = [r[0] for r in store.query("SELECT reason FROM quarantine")]
    assert any(series_uid in r for r in reasons), reasons
