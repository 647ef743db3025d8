"""``gliowatch assess`` on a hand-written table, including a bad row."""

from __future__ import annotations

import csv
import io
import json

import pytest

from flows.cli import main

HEADER = ("patient_id,scan_date,rt_end_date,et_ml,netc_ml,snfh_ml,spd_mm2,new_measurable_lesion,"
          "nonmeasurable_progression,steroid_dose_mg,clinical_status,mgmt")
# Two patients, mixed and unsorted. P-A: pseudoprogression. P-B: PD confirmed after a preliminary PD.
# (issue 32: P-B's ET volume at 2025-03-10 is 10.0 mL, +25 %, so that the volumes support its SPD +31 %; with
# 9.0 mL, +12 %, the 2D and volumetric assessments disagree and the scan is DISCORDANT, not a preliminary PD)
ROWS = """P-B,2025-03-10,2025-01-06,10.0,1.0,20.0,1050,0,0,2,stable,unmethylated
P-A,2025-02-03,2025-01-06,10.0,2.0,30.0,1000,0,0,2,stable,methylated
P-A,2024-12-01,2025-01-06,25.0,4.0,50.0,2500,,,,,
P-B,2025-02-03,2025-01-06,8.0,1.0,20.0,800,0,0,2,stable,
P-A,2025-03-17,2025-01-06,14.0,2.0,25.0,1400,0,0,2,stable,
P-B,2025-04-14,2025-01-06,14.0,1.0,22.0,1350,0,0,2,stable,
P-A,2025-04-28,,11.0,2.0,28.0,1050,0,0,2,improved,
P-A,2025-05-30,2025-01-06,10.0,2.0,28.0,abc,0,0,2,stable,
"""


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "timepoints.csv"
    path.write_text(HEADER + "\n" + ROWS, encoding="utf-8")
    return path


def _assess(args, capsys) -> tuple[int, str, str]:
    rc = main(["assess", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_csv_output_one_row_per_input_row_in_input_order(table, capsys) -> None:
    rc, out, err = _assess([table], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["patient_id", "scan_date", "response", "final_response", "pd_date",
                             "psp_probability", "reason"]
    got = [(r["patient_id"], r["scan_date"], r["response"], r["final_response"], r["pd_date"]) for r in rows]
    assert got == [
        ("P-B", "2025-03-10", "PRELIM_PD", "PD", "2025-03-10"),
        ("P-A", "2025-02-03", "BASELINE", "BASELINE", ""),
        ("P-A", "2024-12-01", "PRE_BASELINE", "PRE_BASELINE", ""),
        ("P-B", "2025-02-03", "BASELINE", "BASELINE", ""),
        ("P-A", "2025-03-17", "PRELIM_PD", "PSEUDOPROGRESSION", ""),
        ("P-B", "2025-04-14", "PD", "PD", "2025-03-10"),
        ("P-A", "2025-04-28", "SD", "SD", ""),  # issue 32: the resolving scan is SD, not PSEUDOPROGRESSION
        ("P-A", "2025-05-30", "NE", "NE", ""),
    ]
    assert float(rows[4]["psp_probability"]) == pytest.approx(0.86, abs=0.01)  # methylated, FLAIR fell
    assert float(rows[0]["psp_probability"]) == pytest.approx(0.31, abs=0.01)  # unmethylated
    assert rows[1]["psp_probability"] == ""
    assert "+40 % over the nadir 1,000 mm²" in rows[4]["reason"] and "criteria v2" in rows[4]["reason"]
    assert "row 8 (line 9), column 'spd_mm2'" in err
    assert rc == 1


def test_json_output_and_volumetric_mode(table, tmp_path, capsys) -> None:
    out_path = tmp_path / "out.json"
    rc, out, _ = _assess([table, "--mode", "3d", "--format", "json", "--out", out_path], capsys)
    assert out == "" and rc == 1
    records = json.loads(out_path.read_text(encoding="utf-8"))
    assert len(records) == 8
    p_b = [r for r in records if r["patient_id"] == "P-B"]
    # 3D: 8.0 -> 10.0 mL is +25 % (SD), 14.0 mL is +75 % over the nadir -> PD after the 12-week window
    assert [(r["scan_date"], r["response"]) for r in p_b] == [
        ("2025-03-10", "SD"), ("2025-02-03", "BASELINE"), ("2025-04-14", "PD")]
    assert records[0]["psp_probability"] is None and records[0]["pd_date"] is None


def test_good_table_exits_zero_and_profile_is_quoted(tmp_path, capsys) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(HEADER + "\n" + "\n".join(ROWS.splitlines()[:7]) + "\n", encoding="utf-8")
    rc, out, err = _assess([path, "--profile", "mrano"], capsys)
    assert rc == 0 and err == ""
    assert "[mRANO, criteria v2]" in out


def test_conflicting_rt_end_dates_are_reported_not_guessed(tmp_path, capsys) -> None:
    path = tmp_path / "conflict.csv"
    path.write_text(HEADER + "\nP-C,2025-02-03,2025-01-06,1,0,0,100,0,0,0,stable,\n"
                    "P-C,2025-04-03,2025-01-20,1,0,0,100,0,0,0,stable,\n", encoding="utf-8")
    rc, out, err = _assess([path], capsys)
    assert rc == 1 and "column 'rt_end_date': rows of patient P-C disagree" in err
    assert [r["response"] for r in csv.DictReader(io.StringIO(out))] == ["NE", "NE"]


def test_wrong_columns_are_refused(tmp_path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("patient_id,scan_date,spd\nP,2025-01-01,1\n", encoding="utf-8")
    rc, _, err = _assess([path], capsys)
    assert rc == 1 and "missing: rt_end_date" in err and "unexpected: spd" in err


def test_rano2010_refuses_3d_mode(table, capsys) -> None:
    rc, _, err = _assess([table, "--profile", "rano2010", "--mode", "3d"], capsys)
    assert rc == 1 and "RANO 2010 defines no thresholds for mode 3d" in err
