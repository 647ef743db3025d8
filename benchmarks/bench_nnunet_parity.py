"""nnU-Net parity: GlioWatch's runner against nnunetv2's own ``nnUNetv2_predict``, same weights.

    python -m benchmarks.bench_nnunet_parity [--model DIR] [--folds 0 1] [--no-mirroring]
                                             [--cases 2] [--spacing-mm 4] [--json OUT]

For each synthetic study (``engine.modelling.synth``, raw intensities, FLAIR on its own coarser
grid so GlioWatch's resampling onto the T1c grid is part of the path):

1. GlioWatch's :class:`~engine.segmentation.nnunet.NnUNetSegmenter` segments the study (labels
   on the native T1c grid, mapped to NETC/SNFH/ET/RC);
2. the channels GlioWatch hands to nnU-Net (each on the T1c grid) are written as NIfTI files
   ``case_000N.nii.gz`` and ``nnUNetv2_predict`` (the command, a subprocess, a temporary
   ``nnUNet_results`` linking the model folder) predicts them with the same folds and mirroring;
3. the command's label file is mapped through the same label mapping and compared voxel by voxel:
   Dice per label (1.0 when both are empty) and the share of equal voxels; and the class
   probabilities (``--save_probabilities``) against the runner's, the largest difference (this
   holds even where a barely trained model's labels are mostly background).

Both times are printed: the command's wall time (Python start, imports, model load, prediction,
file I/O) and GlioWatch's model load and per-study segmentation. The default model is the tiny test
fixture (tests/fixtures/nnunet-tiny/model, label mapping brats2024-post).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "nnunet-tiny" / "model"
LABELS = ("NETC", "SNFH", "ET", "RC")


def synthetic_study(seed: int, *, spacing_mm: float) -> dict:
    """Four sequences of one synthetic visit; FLAIR resampled onto a 1.5x coarser grid."""
    from engine.modelling.synth.training import sample_training_case
    from engine.segmentation.preprocess import resample_to_grid
    from engine.types import STUDY_SEQUENCES, Sequence, Volume

    case = sample_training_case(seed, spacing_mm=spacing_mm, normalize=False, thick_slice_probability=0.0)
    volumes = {s: Volume(case.images[i], case.affine.copy()) for i, s in enumerate(STUDY_SEQUENCES)}
    coarse = case.affine.copy()
    coarse[:3, :3] *= 1.5
    shape = tuple(int(n / 1.5) for n in case.images.shape[1:])
    flair = resample_to_grid(volumes[Sequence.FLAIR], affine=coarse, shape=shape).numpy()  # type: ignore[arg-type]
    volumes[Sequence.FLAIR] = Volume(flair, coarse)
    return volumes


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks; 1.0 when both are empty.

    >>> dice(np.array([1, 1, 0], bool), np.array([1, 0, 0], bool))
    0.6666666666666666
    """
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def run_cli(model_dir: Path, input_dir: Path, output_dir: Path, *, folds: tuple[str, ...], mirroring: bool) -> float:
    """``nnUNetv2_predict`` on ``input_dir``; its wall time in seconds."""
    import torch

    plans = json.loads((model_dir / "plans.json").read_text())
    fold = folds[0] if folds else "0"
    checkpoint = torch.load(model_dir / f"fold_{fold}" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    trainer, configuration = checkpoint["trainer_name"], checkpoint["init_args"]["configuration"]
    results = output_dir.parent / "nnUNet_results"
    dataset = results / plans["dataset_name"]
    dataset.mkdir(parents=True, exist_ok=True)
    link = dataset / f"{trainer}__{plans['plans_name']}__{configuration}"
    if not link.exists():
        link.symlink_to(model_dir.resolve(), target_is_directory=True)
    command = [str(Path(sys.executable).parent / "nnUNetv2_predict"), "-i", str(input_dir), "-o", str(output_dir),
               "-d", plans["dataset_name"], "-c", configuration, "-tr", trainer, "-p", plans["plans_name"],
               "-f", *folds, "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar", "--save_probabilities"]
    if not mirroring:
        command.append("--disable_tta")
    env = {**os.environ, "nnUNet_results": str(results), "nnUNet_raw": str(results), "nnUNet_preprocessed": str(results)}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def parity(*, model_dir: Path = FIXTURE, labels: str = "brats2024-post", folds: tuple[str, ...] = ("0", "1"),
           mirroring: bool = True, seeds: tuple[int, ...] = (2024,), spacing_mm: float = 4.0) -> dict:
    """Run both on the same studies; Dice per label and times (see the module doc)."""
    from engine.segmentation.nnunet import NnUNetSegmenter, model_input
    from engine.types import Sequence

    start = time.perf_counter()
    segmenter = NnUNetSegmenter(model_dir=model_dir, labels=labels, folds=folds, mirroring=mirroring, device="cpu")
    load_s = time.perf_counter() - start
    ours, ours_maps, segment_s = {}, {}, []
    with tempfile.TemporaryDirectory(prefix="nnunet-parity-") as tmp:
        input_dir, output_dir = Path(tmp) / "input", Path(tmp) / "output"
        input_dir.mkdir()
        for seed in seeds:
            volumes = synthetic_study(seed, spacing_mm=spacing_mm)
            result = segmenter.segment(volumes, exam=f"synthetic {seed}")
            segment_s.append(result.elapsed_s)
            ours[seed] = result.labels
            reference = volumes[Sequence.T1C]
            stack = model_input(volumes, channels=segmenter.folder.channels, reference=reference)
            ours_maps[seed] = segmenter.predict(stack, spacing_mm=reference.spacing_mm, probabilities=True)[1]
            for channel, image in enumerate(stack):
                nib.save(nib.Nifti1Image(image, reference.affine), input_dir / f"case{seed}_{channel:04d}.nii.gz")
        cli_s = run_cli(model_dir, input_dir, output_dir, folds=folds, mirroring=mirroring)
        rows = []
        for seed, labels_volume in ours.items():
            theirs = np.asarray(nib.load(output_dir / f"case{seed}.nii.gz").dataobj).astype(np.uint8)
            theirs = segmenter.label_lut[theirs]  # the same label mapping
            mine = np.asarray(labels_volume.array)
            their_maps = np.load(output_dir / f"case{seed}.npz")["probabilities"].transpose(0, 3, 2, 1)
            rows.append({"seed": seed, "shape": list(mine.shape), "equal_voxels": float((mine == theirs).mean()),
                         "max_probability_difference": float(np.abs(ours_maps[seed] - their_maps).max()),
                         "dice": {name: dice(mine == i, theirs == i) for i, name in enumerate(LABELS, start=1)},
                         "voxels": {name: [int((mine == i).sum()), int((theirs == i).sum())]
                                    for i, name in enumerate(LABELS, start=1)}})
    return {"model": str(model_dir), "folds": list(folds), "mirroring": mirroring, "spacing_mm": spacing_mm,
            "cases": rows, "gliowatch_load_s": load_s, "gliowatch_segment_s": segment_s, "nnunetv2_predict_s": cli_s,
            "min_dice": min(d for row in rows for d in row["dice"].values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=FIXTURE)
    parser.add_argument("--labels", default="brats2024-post")
    parser.add_argument("--folds", nargs="+", default=["0", "1"])
    parser.add_argument("--no-mirroring", action="store_true")
    parser.add_argument("--cases", type=int, default=2)
    parser.add_argument("--spacing-mm", type=float, default=4.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = parity(model_dir=args.model, labels=args.labels, folds=tuple(args.folds), mirroring=not args.no_mirroring,
                    seeds=tuple(2024 + i for i in range(args.cases)), spacing_mm=args.spacing_mm)
    for row in report["cases"]:
        dices = "  ".join(f"{k} {v:.4f}" for k, v in row["dice"].items())
        print(f"case {row['seed']} {row['shape']}: Dice {dices}; equal voxels {row['equal_voxels']:.5f}; "
              f"max |probability difference| {row['max_probability_difference']:.2e}; "
              f"voxels (ours, nnunetv2) {row['voxels']}")
    segment = ", ".join(f"{s:.2f}" for s in report["gliowatch_segment_s"])
    print(f"nnUNetv2_predict (command, {len(report['cases'])} cases, incl. start-up): {report['nnunetv2_predict_s']:.2f} s")
    print(f"GlioWatch: load {report['gliowatch_load_s']:.2f} s, segment per case {segment} s")
    print(f"min Dice {report['min_dice']:.4f} (target >= 0.999)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["min_dice"] >= 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())
