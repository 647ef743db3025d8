"""Series classification: the shipped rules on vendor-style headers, and rules-file validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset

from engine.errors import ConfigError
from engine.series_rules import (
    HEADER_KEYWORDS,
    SeriesRules,
    classify_series,
    load_series_rules,
    series_header,
)
from engine.settings import CONFIG_DIR
from engine.types import Sequence

SHIPPED = CONFIG_DIR / "series_rules.toml"


@pytest.fixture(scope="module")
def rules() -> SeriesRules:
    return load_series_rules(SHIPPED)


def header(description: str = "", **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(HEADER_KEYWORDS)
    values.update(SeriesDescription=description or None, Modality="MR", ImageType=["ORIGINAL", "PRIMARY"])
    values.update(fields)
    return values


AGENT = {"ContrastBolusAgent": "GADOVIST"}

# (description, extra header fields, expected sequence, expected rule)
VENDOR_CASES = [
    ("AX T1 POST GD", {}, Sequence.T1C, "t1c-name"),
    ("t1_se_tra_KM", {}, Sequence.T1C, "t1c-name"),
    ("SAG 3D T1 BRAVO +C", {}, Sequence.T1C, "t1c-name"),
    ("T1W_SE_TRA_GD", {}, Sequence.T1C, "t1c-name"),
    ("T1W_3D_TFE_SAG +C", {}, Sequence.T1C, "t1c-name"),
    ("t1_se_tra", {}, Sequence.T1, "t1-name"),
    ("AX T1", {}, Sequence.T1, "t1-name"),
    ("T2W_TSE_TRA", {}, Sequence.T2, "t2-name"),
    ("t2_space_dark-fluid_sag_p2_iso", {}, Sequence.FLAIR, "flair-name"),
    ("FLAIR_TRA", {}, Sequence.FLAIR, "flair-name"),
    ("T1 MPRAGE +C", {}, Sequence.T1C, "t1c-name"),
    ("t1_mprage_tra_Gd", {}, Sequence.T1C, "t1c-name"),
    ("Ax 3D BRAVO +C", {}, Sequence.T1C, "t1c-name"),
    ("Ax T1 C+", {}, Sequence.T1C, "t1c-name"),
    ("AX T1 FLAIR POST", {}, Sequence.T1C, "t1c-name"),
    ("T1W_3D_TFE", AGENT, Sequence.T1C, "t1c-contrast-tag"),
    ("SAG 3D FSPGR", AGENT, Sequence.T1C, "t1c-contrast-tag"),
    ("AX POST GD", {}, Sequence.T1C, "post-contrast-name"),
    ("Ax T1 SE pre", {}, Sequence.T1, "t1-name"),
    ("t1_fl3d_tra_pre", AGENT, Sequence.T1, "t1-name"),
    ("T1W_3D_TFE", {}, Sequence.T1, "t1-name"),
    ("sag_mprage_p2_iso", {}, Sequence.T1, "t1-name"),
    ("Sag T1 FLAIR", {}, Sequence.T1, "t1-name"),
    ("t2_tse_tra", {}, Sequence.T2, "t2-name"),
    ("AX T2 FSE", {}, Sequence.T2, "t2-name"),
    ("T2W_TSE", {}, Sequence.T2, "t2-name"),
    ("t2_spc_sag_p2_iso", {}, Sequence.T2, "t2-name"),
    ("3D FLAIR SAG", {}, Sequence.FLAIR, "flair-name"),
    ("t2_tirm_tra_dark-fluid", {}, Sequence.FLAIR, "flair-name"),
    ("Ax T2 FLAIR", {}, Sequence.FLAIR, "flair-name"),
    ("T2W_FLAIR", AGENT, Sequence.FLAIR, "flair-name"),
    ("AAHead_Scout_32ch-head-coil", {}, Sequence.OTHER, "localizer-name"),
    ("3Plane Loc SSFSE", {}, Sequence.OTHER, "localizer-name"),
    ("localizer", {"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, Sequence.OTHER, "localizer-image-type"),
    ("MPR Cor T1 +C", {"ImageType": ["DERIVED", "SECONDARY", "MPR"]}, Sequence.OTHER, "derived-image-type"),
    ("t1_mprage_sag_p2_iso_MPR_tra", {}, Sequence.OTHER, "derived-name"),
    ("T1 POST SUB", {}, Sequence.OTHER, "derived-name"),
    ("ep2d_diff_3scan_trace_p2", {}, Sequence.OTHER, "diffusion-perfusion-name"),
    ("Ax DWI", {}, Sequence.OTHER, "diffusion-perfusion-name"),
    ("ep2d_diff_ADC", {"ImageType": ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]}, Sequence.OTHER, "derived-image-type"),
    ("ep2d_perf", {}, Sequence.OTHER, "diffusion-perfusion-name"),
    ("", {"ScanningSequence": ["EP"], "RepetitionTime": 1500.0, "EchoTime": 30.0}, Sequence.OTHER, "epi-readout"),
    ("t2_swi_tra", {}, Sequence.OTHER, "susceptibility-name"),
    ("AX T2*", {}, Sequence.OTHER, "susceptibility-name"),
    ("AX T1 POST GD", {"Modality": "CT"}, Sequence.OTHER, "non-mr"),
    ("", {"RepetitionTime": 9000.0, "EchoTime": 120.0, "InversionTime": 2500.0}, Sequence.FLAIR, "flair-inversion"),
    ("", {"RepetitionTime": 2300.0, "EchoTime": 2.3, "InversionTime": 900.0}, Sequence.T1, "t1-ir-prepared"),
    ("", {"RepetitionTime": 2300.0, "EchoTime": 2.3, "InversionTime": 900.0, **AGENT}, Sequence.T1C, "t1c-ir-prepared"),
    ("", {"RepetitionTime": 500.0, "EchoTime": 10.0}, Sequence.T1, "t1-timing"),
    ("", {"RepetitionTime": 500.0, "EchoTime": 10.0, **AGENT}, Sequence.T1C, "t1c-timing"),
    ("", {"RepetitionTime": 5000.0, "EchoTime": 100.0}, Sequence.T2, "t2-timing"),
    ("", {"RepetitionTime": 3000.0, "EchoTime": 50.0}, Sequence.OTHER, "no-match"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("description", "fields", "expected", "rule_name"),
    VENDOR_CASES,
    ids=[f"{c[0] or 'no-name'}-{c[3]}" for c in VENDOR_CASES],
)
def test_vendor_series_are_classified_with_their_reason(
    rules: SeriesRules, description: str, fields: dict[str, Any], expected: Sequence, rule_name: str
) -> None:
    result = classify_series(header(description, **fields), rules)
    assert (result.sequence, result.rule) == (expected, rule_name), result.explanation
    assert result.explanation.startswith(expected.value)
    if rule_name != "no-match":
        assert f"rule '{rule_name}'" in result.explanation
    if description and result.rule.endswith("-name"):
        assert repr(description) in result.explanation  # quotes the value it saw


def test_protocol_name_is_used_when_the_description_says_nothing(rules: SeriesRules) -> None:
    result = classify_series(header("", ProtocolName="t2_tse_tra_512"), rules)
    assert result.sequence is Sequence.T2
    assert "ProtocolName 't2_tse_tra_512'" in result.explanation


def test_timing_explanation_quotes_the_numbers(rules: SeriesRules) -> None:
    result = classify_series(
        header("", RepetitionTime=9000.0, EchoTime=120.0, InversionTime=2500.0), rules
    )
    assert "InversionTime 2500 ms in [1500, 3000]" in result.explanation
    assert "RepetitionTime 9000 ms" in result.explanation


def test_no_match_lists_what_was_seen(rules: SeriesRules) -> None:
    result = classify_series(header("mystery", RepetitionTime=3000.0, EchoTime=50.0), rules)
    assert result.sequence is Sequence.OTHER
    assert "no rule matched" in result.explanation
    assert "SeriesDescription 'mystery'" in result.explanation
    assert "EchoTime 50 ms" in result.explanation


def test_series_header_reads_plain_values_from_a_dataset() -> None:
    ds = Dataset()
    ds.SeriesDescription = "t1_mprage_tra_Gd "
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.ScanningSequence = "GR"
    ds.RepetitionTime = "2300"
    ds.EchoTime = "2.32"
    ds.ContrastBolusAgent = "Gadovist"
    ds.Modality = "MR"
    ds.PatientName = "Doe^Jane"
    result = series_header(ds)
    assert set(result) == set(HEADER_KEYWORDS)
    assert result["SeriesDescription"] == "t1_mprage_tra_Gd"
    assert result["ImageType"] == ["ORIGINAL", "PRIMARY", "M", "ND"]
    assert result["ScanningSequence"] == ["GR"]
    assert result["RepetitionTime"] == pytest.approx(2300.0)
    assert result["EchoTime"] == pytest.approx(2.32)
    assert result["InversionTime"] is None
    assert "PatientName" not in result


def test_corpus_headers_classify_by_timing(shared_dir: Path, rules: SeriesRules) -> None:
    corpus = shared_dir / "dicom-corpus"
    philips = pydicom.dcmread(next((corpus / "philips/anatomical/001").glob("*.dcm")))
    siemens_flair = pydicom.dcmread(next((corpus / "failing/slicecount/001").glob("*.dcm")))
    # Philips 3D FLAIR: TR 4800 ms, TE 387 ms, TI 1650 ms, no description.
    assert classify_series(series_header(philips), rules).rule == "flair-inversion"
    # Siemens 3D SPACE dark-fluid: TR 6000 ms, TE 394 ms, TI 2200 ms.
    assert classify_series(series_header(siemens_flair), rules).sequence is Sequence.FLAIR


def test_every_shipped_rules_file_loads() -> None:
    files = sorted(CONFIG_DIR.glob("series_rules*.toml"))
    assert files
    for path in files:
        loaded = load_series_rules(path)
        assert loaded.rules and loaded.version
        assert {rule.sequence for rule in loaded.rules} == set(Sequence)


BAD_FILES = [
    ("version = '1'\n", "no \\[\\[rule\\]\\] tables"),
    ("[[rule]]\nname = 'x'\nsequence = 'T1'\nfoo = 1\n", "unknown key\\(s\\) foo"),
    ("[[rule]]\nname = 'x'\nsequence = 'T3'\ntext = ['t1']\n", "'sequence' must be one of"),
    ("[[rule]]\nname = 'x'\nsequence = 'T1'\ntext = ['(t1']\n", "not a valid regular expression"),
    ("[[rule]]\nname = 'x'\nsequence = 'T1'\ntr_ms = [900, 10]\n", "must be \\[min, max\\]"),
    ("[[rule]]\nname = 'x'\nsequence = 'T1'\n", "has no condition"),
    ("[[rule]]\nname = 'x'\nsequence = 'T1'\ncontrast_agent = 'yes'\n", "must be true or false"),
    (
        "[[rule]]\nname = 'x'\nsequence = 'T1'\ntext = ['a']\n"
        "[[rule]]\nname = 'x'\nsequence = 'T2'\ntext = ['b']\n",
        "duplicate rule name",
    ),
    ("[[rule]\n", "not valid TOML"),
    ("surprise = 1\n[[rule]]\nname = 'x'\nsequence = 'T1'\ntext = ['a']\n", "unknown top-level"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_rules_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_series_rules(path)


def test_missing_rules_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_series_rules(tmp_path / "absent.toml")


def test_enhanced_mr_timing_comes_from_functional_groups(rules: SeriesRules) -> None:
    ds = Dataset()
    ds.Modality, ds.SeriesDescription = "MR", "3D_Brain_VIEW"
    timing, echo, modifier, agent = Dataset(), Dataset(), Dataset(), Dataset()
    timing.RepetitionTime, echo.EffectiveEchoTime, modifier.InversionTimes = "4800", 320.0, [1650.0]
    agent.CodeMeaning = "Gadobutrol"
    shared = Dataset()
    shared.MRTimingAndRelatedParametersSequence = [timing]
    shared.MREchoSequence = [echo]
    shared.MRModifierSequence = [modifier]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.ContrastBolusAgentSequence = [agent]
    result = series_header(ds)
    assert (result["RepetitionTime"], result["EchoTime"], result["InversionTime"]) == (4800.0, 320.0, 1650.0)
    assert result["ContrastBolusAgent"] == "Gadobutrol"
    assert classify_series(result, rules).rule == "flair-inversion"
