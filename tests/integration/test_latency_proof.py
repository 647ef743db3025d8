"""Proof 1 with real processes: per-study latency, last instance stored -> alert delivered.

Runs ``benchmarks/bench_latency.py`` as its own process (the project's Orthanc on free ports, a
real ``gliowatch watch`` with segmentation, registration, assessment and webhook delivery on, a
real HMAC sink) over one synthetic progression patient of 6 visits with its treatment timeline
imported, whose growing follow-up is called PD. Asserted: every study is assessed and has its
figures, a clinical alert is raised, every raised alert reaches the sink exactly once. No timing
is asserted (the figures go to docs/BENCHMARKS.md); slow: about 6 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.settings import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_alert_of_a_progressing_patient_is_delivered_once_with_its_latency(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "benchmarks.bench_latency", "--visits", "6", "--json", str(out),
         "--work", str(tmp_path / "work")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=2400, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    artifacts = PROJECT_ROOT / "test-artifacts" / "reliability"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "latency.json").write_text(json.dumps(result, indent=1))
    rows = result["rows"]
    assert len(rows) == 6
    assert all(r["processing_s"] > 0 and r["end_to_end_assessed_s"] > 0 for r in rows)
    assert result["alerts_raised"] >= 1
    assert result["alerts_received"] == result["alerts_raised"]
    assert result["duplicates_at_sink"] == 0
    assert any("end_to_end_alert_s" in r for r in rows)
    clinical = [t for r in rows for t in r.get("alerts", []) if t.startswith("ALERT_")]
    assert clinical, f"no clinical alert for the progressing patient: {[r.get('rano2_2d') for r in rows]}"
