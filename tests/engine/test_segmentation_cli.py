"""`gliowatch segment STUDY_DIR --out LABELS.nii.gz --volumes VOLUMES.json` on a synthetic DICOM study."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from engine.dicom import read_study_dir
from engine.modelling.evaluation.metrics import REGIONS
from engine.segmentation.model_config import model_config_from_dict
from engine.series_rules import classify_series, load_series_rules
from engine.settings import load_settings
from engine.types import Label, Sequence
from engine.segmentation.network import build_network, save_weights_fp16
from engine.modelling.synth.cohort import generate_cohort
from flows.cli import main
from test_segmentation_phantom import tiny_config

TINY = tiny_config("tiny-cli", spacing_mm=4.0)


@pytest.fixture(scope="module")
def study_and_config(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("segment-cli")
    manifest = generate_cohort(n_patients=1, seed=11, out_dir=root / "cohort", size="test", n_visits=3)
    visit = json.loads(manifest.read_text())["patients"][0]["visits"][0]
    study = root / "study"
    shutil.copytree(root / "cohort" / visit["dir"], study, ignore=shutil.ignore_patterns("truth"))
    model = root / "model"
    model.mkdir()
    config = model_config_from_dict(TINY, model_dir=model)
    torch.manual_seed(0)
    save_weights_fp16(build_network(config), model / "model.pt")
    (model / "config.json").write_text(json.dumps(config.to_json()))
    settings = root / "gliowatch.toml"
    settings.write_text(f'[segmentation]\nmodel_dir = "{model}"\ndevice = "cpu"\n')
    return study, settings


def test_segment_writes_labels_on_the_t1c_grid_and_volumes(study_and_config, tmp_path: Path, capsys) -> None:
    study, settings = study_and_config
    out, volumes = tmp_path / "labels.nii.gz", tmp_path / "volumes.json"
    assert main(["--config", str(settings), "segment", str(study), "--out", str(out), "--volumes", str(volumes)]) == 0
    rules = load_series_rules(load_settings(settings).series_rules)
    t1c = next(v for h, v in read_study_dir(study).volumes if classify_series(h, rules).sequence is Sequence.T1C)
    image = nib.load(out)
    assert image.shape == t1c.array.shape
    np.testing.assert_allclose(image.affine, t1c.affine, atol=1e-4)
    assert image.get_data_dtype() == np.uint8
    report = json.loads(volumes.read_text())
    assert {"NETC", "SNFH", "ET", "RC", "flags", "model_name", "weights_sha256", "config_sha256"} <= set(report)
    assert report["config_sha256"] == model_config_from_dict(TINY).config_sha256()
    labels = np.asarray(image.dataobj)
    voxel_ml = abs(np.linalg.det(image.affine[:3, :3])) / 1000.0
    assert report["ET"] == pytest.approx(float((labels == 3).sum()) * voxel_ml, abs=1e-3)
    assert "NETC" in capsys.readouterr().out


def test_segment_refuses_to_overwrite_without_force(study_and_config, tmp_path: Path) -> None:
    study, settings = study_and_config
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"keep me")
    assert main(["--config", str(settings), "segment", str(study), "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me"
    assert main(["--config", str(settings), "segment", str(study), "--out", str(out), "--force"]) == 0
    assert nib.load(out).shape


def test_segment_without_a_t1_series_fails_with_a_reason(study_and_config, tmp_path: Path, capsys) -> None:
    study, settings = study_and_config
    only_t2 = tmp_path / "t2-only"
    for folder in study.iterdir():
        if "T2" in folder.name and "FLAIR" not in folder.name:
            shutil.copytree(folder, only_t2 / folder.name)
    assert main(["--config", str(settings), "segment", str(only_t2), "--out", str(tmp_path / "x.nii.gz")]) == 1
    assert "No post-contrast T1 or plain T1" in capsys.readouterr().err


def test_calibrate_writes_decision_weights_the_segmenter_then_uses(study_and_config, tmp_path: Path, capsys) -> None:
    """`gliowatch calibrate --write` on a one-patient calibration cohort with a tiny model."""
    from engine.segmentation.model_config import load_model_config

    _, settings = study_and_config
    model = tmp_path / "model"
    shutil.copytree(Path(load_settings(settings).segmentation.model_dir), model)
    args = ["--config", str(settings), "calibrate", "--model", str(model), "--patients", "1", "--visits", "3",
            "--size", "test", "--work", str(tmp_path / "work"), "--grid", "0.5,1,2"]
    assert main([*args, "--write"]) == 0
    out = capsys.readouterr().out
    assert "plain argmax:" in out and "chosen weights:" in out and "(27 combinations searched)" in out
    config = load_model_config(model)
    assert set(config.decision_weights) == {Label.NETC, Label.SNFH, Label.ET}
    assert all(w in (0.5, 1.0, 2.0) for w in config.decision_weights.values())
    assert config.calibration["seed"] == 515151 and config.calibration["studies"] == 3
    cached = list((tmp_path / "work").glob("cases-*/*.npz"))
    assert len(cached) == 3
    # a second run reuses the cohort and the cached probabilities
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("with weights:")
    # the benchmark reports the calibrated rule and, from the same probabilities, the plain argmax
    from benchmarks.bench_segmentation import main as bench_main

    work = tmp_path / "bench"
    summary = bench_main(["--model", str(model), "--patients", "1", "--visits", "3", "--size", "test",
                          "--no-missing", "--no-baseline", "--no-ceiling", "--work", str(work)])
    assert summary["complete | all"]["n"] == 3 and summary["complete, plain argmax | all"]["n"] == 3
    assert "cohort: seed 424242, 1 patients x 3 visits, size test, generated in" in capsys.readouterr().out
    # a reused cohort is described as cohort.json has it, not by this run's (default) --patients/--visits
    bench_main(["--model", str(model), "--no-missing", "--no-baseline", "--no-ceiling", "--work", str(work),
                "--reuse"])
    assert "cohort: seed 424242, 1 patients x 3 visits, size test, reused" in capsys.readouterr().out


def test_bench_segmentation_runs_end_to_end_on_a_tiny_model(study_and_config, tmp_path: Path) -> None:
    """The benchmark's code path (one test-size patient of 3 visits, stages timed, baseline, one sequence missing)."""
    from benchmarks.bench_segmentation import main as bench_main

    _, settings = study_and_config
    model = Path(load_settings(settings).segmentation.model_dir)
    summary = bench_main(["--model", str(model), "--patients", "1", "--visits", "3", "--size", "test",
                          "--json", str(tmp_path / "out.json"), "--test-time-flip", "0"])
    assert summary["complete | all"]["n"] == 3 and summary["no T1c | all"]["n"] == 3
    # the ideal segmenter's figures beside ours, for the same studies (not for a run off the T1c grid)
    assert 0.85 < summary["complete | all"]["ceiling_dice_WT"] < 1.0
    assert "ceiling_dice_WT" not in summary["no T1c | all"]
    assert set(summary["stage_network_median_s"]) == {"ours", "baseline"}
    assert summary["sliding_window_ratio"]["median"] > 0
    # the baseline's own Dice against the truth, to tell which of two disagreeing outputs is closer
    assert set(summary["baseline_dice_vs_truth"]) >= {"WT", "TC", "ET"}
    assert all(0.0 <= v <= 1.0 for v in summary["baseline_dice_vs_truth"].values())
    # where the two differ, whose voxels match the truth; counted per study, consistent with Dice
    for entry in summary["disagreement"].values():
        assert 0.0 <= entry["ours_right_fraction"] <= 1.0
        assert entry["ours_closer"] + entry["baseline_closer"] <= entry["studies"] <= 3
    # the network's counted work, ours and the baseline's; a FLOP floor only on CUDA
    assert 0 < summary["network_gflop"]["ours"] and 0 < summary["network_gflop"]["baseline"]
    assert set(summary["network_gflop_per_s"]) == {"ours", "baseline"} and "flop_floor" not in summary
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["rows"][0]["run"] == "complete" and saved["seed"] == 424242
    for row in (r for r in saved["rows"] if "agreement_dice" in r):
        assert all((row["disagreement"][k]["voxels"] == 0) == (row["agreement_dice"][k] == 1.0) for k in REGIONS)
    assert saved["test_time_flips"] == [[0]]  # --test-time-flip overrides the model's config
    # the pre-operative visit has no resection cavity: what is predicted there is reported
    assert summary["false_positive_ml"]["RC"]["n"] == 1 and summary["false_positive_ml"]["RC"]["max"] >= 0.0


def test_bench_segmentation_doctests() -> None:
    import doctest

    import benchmarks.bench_segmentation as bench

    failures, tried = doctest.testmod(bench, raise_on_error=False, verbose=False)[:2]
    assert tried > 0 and failures == 0


def test_bench_gpu_network_writes_shapes_and_times_both_paths_on_the_cpu(study_and_config, tmp_path: Path,
                                                                         capsys) -> None:
    """The network-only GPU benchmark's code path, run on the CPU: shapes from a generated cohort
    (the pipeline's preparation), then ours and the plain sliding window on random inputs."""
    import doctest

    import benchmarks.bench_gpu_network as bench
    from engine.modelling.flops import FlopCounter
    from engine.segmentation.model_config import load_model_config
    from engine.segmentation.network import load_network

    failures, tried = doctest.testmod(bench, raise_on_error=False, verbose=False)[:2]
    assert tried > 0 and failures == 0
    study, settings = study_and_config
    model = Path(load_settings(settings).segmentation.model_dir)
    shapes = tmp_path / "shapes.json"
    assert bench.main(["--model", str(model), "--write-shapes", str(study.parent / "cohort"),
                       "--shapes", str(shapes)]) == 0
    data = json.loads(shapes.read_text())
    assert data["cohort"]["seed"] == 11 and len(data["studies"]) == 3
    for entry in data["studies"]:  # the head crop lies inside the working grid; 4 channels each
        assert entry["crop"][0] == entry["grid"][0] == 4
        assert all(0 < c <= g for c, g in zip(entry["crop"][1:], entry["grid"][1:], strict=True))
    out = tmp_path / "out.json"
    assert bench.main(["--model", str(model), "--shapes", str(shapes), "--device", "cpu", "--repeats", "1",
                       "--limit", "2", "--peak-tflops", "400", "--peak-tflops", "800", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["summary"]["n"] == 2
    flops = FlopCounter(load_network(load_model_config(model))[0])
    for row in result["rows"]:
        assert row["ours_s"] > 0 and row["baseline_s"] > 0 and row["ratio"] == row["baseline_s"] / row["ours_s"]
        assert row["ours_gflop"] == flops.count((1, *row["crop"])) / 1e9
        # the test-size grid is smaller than a window: MONAI pads it to one 128^3 window
        assert row["baseline_windows"] == 1
        assert row["baseline_gflop"] == flops.count((1, 4, 128, 128, 128)) / 1e9
        assert set(row["floor"]) == {"400", "800"} and row["floor"]["800"] == pytest.approx(2 * row["floor"]["400"])
    if not torch.cuda.is_available():  # `python -m benchmarks` passes it by without a GPU
        capsys.readouterr()
        assert bench.main(["--model", str(model), "--shapes", str(shapes), "--json", str(tmp_path / "none.json")]) == 0
        assert "no CUDA device here, nothing measured" in capsys.readouterr().out
        assert not (tmp_path / "none.json").exists()


@pytest.mark.parametrize("seed", ["200005", "515151"])
def test_bench_segmentation_refuses_a_training_or_calibration_seed(seed: str, tmp_path: Path, capsys) -> None:
    """A benchmark on patients the model was trained or calibrated on would not be held out."""
    from benchmarks.bench_segmentation import main as bench_main

    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--seed", seed, "--work", str(tmp_path / "w"), "--size", "test", "--patients", "1"])
    assert exit_info.value.code == 2
    assert f"seed {seed} is reserved for" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
    # a reused cohort is judged by the seed it was generated from, not by --seed
    (tmp_path / "r" / "cohort").mkdir(parents=True)
    (tmp_path / "r" / "cohort" / "cohort.json").write_text(json.dumps({"seed": int(seed)}))
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--reuse", "--work", str(tmp_path / "r"), "--seed", "616161"])
    assert exit_info.value.code == 2
    assert f"seed {seed} is reserved for" in capsys.readouterr().err
    # --reuse of a folder without a cohort: a clear message, not a traceback
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["--reuse", "--work", str(tmp_path / "empty")])
    assert exit_info.value.code == 2
    assert "there is no cohort to reuse" in capsys.readouterr().err


def test_calibrate_refuses_the_held_out_or_a_training_seed(tmp_path: Path, capsys) -> None:
    for seed in ("424242", "100000"):
        assert main(["calibrate", "--seed", seed, "--work", str(tmp_path / "w")]) == 2
        assert f"gliowatch calibrate: seed {seed} is reserved for" in capsys.readouterr().out
    assert main(["calibrate", "--visits", "2", "--work", str(tmp_path / "w")]) == 2
    assert "gliowatch calibrate: --visits must be at least 3" in capsys.readouterr().out
    assert not (tmp_path / "w").exists()
