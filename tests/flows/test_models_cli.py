"""`gliowatch models list|check` and `gliowatch rescore --model NAME` with the real CLI and the
tiny nnU-Net folder nnunetv2 trained here (tests/fixtures/nnunet-tiny)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("nnunetv2", reason="nnunetv2 is not installed (requirements.lock)")

from engine.settings import load_settings  # noqa: E402
from flows.cli import main  # noqa: E402
from flows.cmd_rescore import _with_model  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "nnunet-tiny" / "model"


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "gliowatch.toml"
    path.write_text(f"""
[segmentation]
device = "cpu"

[[segmentation.models]]
name = "tiny"
kind = "nnunet"
path = "{FIXTURE}"
labels = "brats2024-post"
folds = [0, 1]
mirroring = false

[[segmentation.models]]
name = "wrong-labels"
kind = "nnunet"
path = "{FIXTURE}"
labels = "brats2021"

[[segmentation.models]]
name = "absent"
kind = "nnunet"
path = "{tmp_path / 'no-such-model'}"
labels = "brats2023"
""")
    return path


def test_models_list_shows_every_model_and_whether_it_loads(settings_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(settings_file), "models", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert list(rows) == ["tiny", "wrong-labels", "absent", "default", "skull-stripped"]
    assert rows["tiny"].split()[1:5] == ["nnunet", "native", "T1,T1c,T2,FLAIR", "yes"]
    assert "no       (nnU-Net model wrong-labels: output label(s) 3 (ET) are not covered" in rows["wrong-labels"]
    assert "no       (nnU-Net model absent: dataset.json is missing" in rows["absent"]
    assert rows["default"].split()[1:5] == ["builtin", "native", "T1c|T1", "yes"]


def test_models_check_runs_the_model_on_a_synthetic_study(settings_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(settings_file), "models", "check", "tiny", "--spacing-mm", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model tiny: OK (nnunet:tiny nnUNetPlans/model/folds-0+1, device cpu)")
    assert "segment" in out and "on a 51x60x51 grid of 4 mm" in out
    for label in ("NETC", "SNFH", "ET", "RC"):
        assert f"  {label:<5} " in out and "synthetic truth" in out


def test_models_check_exits_1_with_the_reason(settings_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--config", str(settings_file), "models", "check", "wrong-labels", "--spacing-mm", "4"]) == 1
    assert "model wrong-labels: FAILED: nnU-Net model wrong-labels: output label(s) 3 (ET) are not" in capsys.readouterr().out
    assert main(["--config", str(settings_file), "models", "check", "nope"]) == 1
    assert "No segmentation model is named 'nope'" in capsys.readouterr().out


def test_rescore_model_names_a_registry_model_or_a_folder(settings_file: Path) -> None:
    segmentation = load_settings(settings_file, environ={}).segmentation
    assert _with_model(segmentation, "tiny").model == "tiny"
    folder = _with_model(segmentation, "models/other-unet")
    assert folder.model == "" and folder.model_dir == "models/other-unet" and folder.bundle_dir == ""
