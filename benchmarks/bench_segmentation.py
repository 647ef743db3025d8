"""Segmentation on held-out synthetic studies: accuracy, volume error, CPU time, sliding-window ratio.

For every study of a freshly generated cohort (``engine.modelling.synth.generate_cohort``, seed 424242 or
``--seed``: never a training seed — ``sample_training_case`` seeds 100000+ or
``sample_acquired_case`` seeds 200000+ — nor the calibration seed 515151; ``engine.seeds``
refuses those), the DICOM folder is
read and classified as ``gliowatch segment`` does, the shipped model segments it, and the labels
(on the T1c grid) are compared with the generator's truth on the same grid:

* Dice WT (1+2+3), TC (1+3), ET (3), RC (4), per scenario, per visit phase, per protocol (2D
  thick-slice axial vs 3D sagittal series) and by true ET volume (below / above 1 mL), over
  studies where the truth region is not empty;
* |volume error| / true volume for ET and SNFH (true volume >= 0.5 mL), median;
* the same with one sequence missing (each of T1, T1c, T2, FLAIR in turn);
* the **ceiling** of every figure: the same Dice and volume errors for the labels of an ideal
  segmenter that knows the generator's class memberships and sees them through the T1c
  series' own slice profile (:mod:`engine.modelling.synth.ceiling`); the truth is nearest-neighbour
  sampled at voxel centres, so a region thinner than the slices is partly invisible in the
  images, and a target above the ceiling cannot be met by any segmenter on that cohort;
* false positives: the predicted volume of a region on the studies where its truth is empty
  (the Dice averages leave those studies out), median and max;
* time per study (preprocessing + inference, DICOM reading excluded; the sequences' rigid
  realignment check of :mod:`engine.segmentation.alignment`, which the pipeline runs by default,
  is timed once as stage ``align`` and counted in both paths' totals) and, on the same prepared
  input, the ratio against MONAI's plain ``sliding_window_inference`` (128^3 windows, overlap 0.5)
  over the whole (uncropped) working grid with the same weights, with the Dice agreement between
  the two outputs (the baseline runs the network as loaded: default memory layout, fp32), the
  baseline's own Dice against the truth, and where the two outputs differ, the share of those
  voxels where ours matches the truth (:func:`where_they_differ`);
* the network's work: convolution FLOPs per study counted on PyTorch's meta device
  (:mod:`engine.modelling.flops`), for ours and the baseline, and the rate each reached; with
  ``--device cuda``, our network time against its FLOP floor at ``--peak-tflops`` (default 400,
  the usable dense bf16 rate of an H100).

Run: ``python -m benchmarks.bench_segmentation [--patients 5] [--visits 6] [--size demo]
[--model models/gliowatch-unet] [--json out.json] [--test-time-flip 0 ...]``; ``--test-time-flip AXES``
(repeatable, e.g. ``0`` or ``1,2``) overrides the model's ``test_time_flips`` for our path (the
sliding-window baseline stays one plain pass).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from engine.dicom import read_nifti, read_study_files
from engine.segmentation import resolve_model_dir
from engine.segmentation.inference import MonaiSegmenter, resample_channels, softmax_decoder
from engine.segmentation.alignment import align_sequences
from engine.modelling.flops import H100_BF16_TFLOPS, FlopCounter
from engine.modelling.evaluation.metrics import REGIONS, disagreement, region_dice, relative_volume_error
from engine.segmentation.model_config import load_model_config
from engine.segmentation.network import load_network
from engine.segmentation.preprocess import (
    choose_reference, grid_multiple, head_mask_of, normalise_channels, resample_study,
)
from engine.segmentation.sanity import remove_small_cavities
from engine.seeds import EVAL_SEED, check_seed_for
from engine.series_rules import load_series_rules
from engine.settings import load_settings
from engine.modelling.synth import cohort_visits, generate_cohort
from engine.modelling.synth.ceiling import cohort_ceiling_labels, t1c_slice_thickness_mm
from engine.types import STUDY_SEQUENCES, Sequence
from engine.series_choice import pick_study_volumes


def sliding_window_baseline(segmenter: MonaiSegmenter, volumes: dict, *, net: Any,
                            flops: FlopCounter | None = None) -> tuple[np.ndarray, float, dict]:
    """Plain MONAI: whole working grid (no head crop), 128^3 windows, overlap 0.5; labels, seconds,
    seconds per stage (and the network's GFLOP when ``flops`` is given).

    ``net`` is the network as loaded (default memory layout, fp32, on the segmenter's device):
    plain MONAI, without our CPU layout or CUDA autocast.

    The working grid is the one inference uses (sides a multiple of twice the network stride);
    preprocessing and the decision rule (weights, small-cavity removal) are the same functions as ours, so the ratio measures
    the inference strategy (head crop + one whole-volume pass + labels only near the tumour
    against overlapping windows over the whole grid + labels everywhere).
    """
    import torch
    from monai.inferers import sliding_window_inference

    start = time.perf_counter()
    config = segmenter.config
    stack, affine, ref_seq = resample_study(volumes, channels=config.channels, spacing_mm=config.spacing_mm,
                                            multiple_of=grid_multiple(config.divisible_by))
    head = torch.from_numpy(head_mask_of(stack[config.channels.index(ref_seq)].numpy()))
    image = normalise_channels(stack, head)
    windows = []

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        windows.append(tuple(batch.shape))
        return net(batch)

    t_prep = time.perf_counter()
    with torch.inference_mode():
        logits = sliding_window_inference(image[None].to(segmenter.device), roi_size=(128, 128, 128), sw_batch_size=1,
                                          predictor=predictor, overlap=0.5)[0].float().cpu()
    t_net = time.perf_counter()
    reference = volumes[choose_reference(volumes)]
    labels = softmax_decoder(config.output_labels, config.decision_weights)(
        resample_channels(logits.softmax(0), source_affine=affine, reference=reference))
    labels, _ = remove_small_cavities(labels, voxel_ml=reference.voxel_ml, min_ml=config.min_cavity_ml)
    end = time.perf_counter()
    stages = {"prepare": t_prep - start, "network": t_net - t_prep, "labels": end - t_net}
    if flops is not None:
        stages["network_gflop"] = sum(flops.count(w) for w in windows) / 1e9
    return labels, end - start, stages


def _segment_by_stage(segmenter: MonaiSegmenter, volumes: dict, *, flops: FlopCounter | None = None):
    """segmenter.segment with each stage timed (and the network's GFLOP when ``flops`` is given);
    also the plain-argmax result from the same probabilities."""
    config = segmenter.config
    start = time.perf_counter()
    prepared = segmenter.prepare(volumes)
    t_prep = time.perf_counter()
    probabilities = segmenter.predict_probabilities(prepared)
    t_net = time.perf_counter()
    result = segmenter.finish(probabilities, prepared=prepared, start=start)
    t_end = time.perf_counter()
    plain = (segmenter.finish(probabilities, prepared=prepared, start=t_end, weighted=False)
             if config.decision_weights else None)
    stages = {"prepare": t_prep - start, "network": t_net - t_prep, "labels": t_end - t_net}
    if flops is not None:  # the plain pass and one per mirrored pass
        passes = 1 + len(config.test_time_flips)
        stages["network_gflop"] = passes * flops.count((1, *prepared.image.shape)) / 1e9
    return result, stages, plain


def _volumes_ml(labels: np.ndarray, like) -> dict[str, float]:  # noqa: ANN001
    """Volumes (mL) per label of ``labels`` on the grid of the Volume ``like``."""
    from engine.segmentation.sanity import label_volumes_ml

    return label_volumes_ml(labels, voxel_ml=like.voxel_ml)


def _summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.mean(values):.3f} (median {statistics.median(values):.3f}, n={len(values)})"


def describe_cohort(cohort_json: Path) -> str:
    """The cohort as cohort.json records it (a reused one need not match this run's --patients/--visits)."""
    cohort = json.loads(cohort_json.read_text())
    visits = sorted({len(p["visits"]) for p in cohort["patients"]})
    return (f"seed {cohort['seed']}, {len(cohort['patients'])} patients x {'/'.join(map(str, visits))} visits, "
            f"size {cohort['size']}")


def evaluate(*, model_dir: Path, patients: int, visits: int, size: str, work: Path,
             missing: bool = True, baseline: bool = True, reuse: bool = False,
             ceiling: bool = True, test_time_flips: tuple[tuple[int, ...], ...] | None = None,
             device: str = "cpu", seed: int = EVAL_SEED) -> dict[str, Any]:
    import copy

    config = load_model_config(model_dir)
    if test_time_flips is not None:
        config = dataclasses.replace(config, test_time_flips=test_time_flips)
    net, sha = load_network(config)
    flops = FlopCounter(net)
    plain_net = copy.deepcopy(net).eval()  # the baseline's: as loaded (MonaiSegmenter changes its own copy's layout)
    # the realignment runs once per study below, before both paths (shared preprocessing)
    segmenter = MonaiSegmenter(config=config, net=net, weights_sha256=sha, device=device, align_sequences=False)
    plain_net = plain_net.to(segmenter.device)
    rules = load_series_rules(load_settings().series_rules)
    t0 = time.perf_counter()
    if not reuse:
        generate_cohort(n_patients=patients, seed=seed, out_dir=work / "cohort", size=size, n_visits=visits,
                        force=True)
    print(f"cohort: {describe_cohort(work / 'cohort' / 'cohort.json')}, "
          + ("reused" if reuse else f"generated in {time.perf_counter() - t0:.0f} s"), flush=True)
    rows: list[dict[str, Any]] = []
    for visit in cohort_visits(work / "cohort"):
        scenario = visit.scenario
        series = list(read_study_files(visit.dicom_files()).volumes)
        volumes, _ = pick_study_volumes(series, rules=rules)
        t_align = time.perf_counter()
        volumes, alignments = align_sequences(volumes, reference=choose_reference(volumes))
        align_s = time.perf_counter() - t_align
        truth_volume = read_nifti(visit.truth_labels)
        truth = truth_volume.array.astype(np.uint8)
        true_ml = visit.true_ml
        protocol = "+".join(f"{s['sequence']}:{s['plane']}" for s in visit.entry["series"] if s["plane"] == "SAG") or "all 2D axial"
        ideal = None
        if ceiling:
            ideal = cohort_ceiling_labels(work / "cohort" / "cohort.json", visit.patient_index, visit.visit_index,
                                          slice_thickness_mm=t1c_slice_thickness_mm(work / "cohort", visit.entry))
        runs = [("complete", dict(volumes))]
        if missing:
            runs += [(f"no {seq}", {k: v for k, v in volumes.items() if k is not seq}) for seq in STUDY_SEQUENCES]
        for name, vols in runs:
            if name == "complete":  # timed by stage; the same calls as segmenter.segment
                result, stages, plain = _segment_by_stage(segmenter, vols, flops=flops)
            else:
                result, stages, plain = segmenter.segment(vols), None, None
            labels = result.labels.array
            on_truth_grid = (labels.shape == truth.shape
                             and np.allclose(result.labels.affine, truth_volume.affine, atol=1e-3))
            ref_truth = truth if on_truth_grid else None
            if ref_truth is None:  # T1c missing: labels are on another series' grid; compare there
                from engine.segmentation.preprocess import resample_to_grid
                from engine.types import Volume
                ref = result.labels
                ref_truth = resample_to_grid(Volume(truth_volume.array.astype(np.float32), truth_volume.affine),
                                             affine=ref.affine,
                                             shape=labels.shape, mode="nearest").numpy().round().astype(np.uint8)
            row = {"scenario": scenario, "phase": visit.phase, "study": visit.study, "run": name,
                   "protocol": protocol, "dice": region_dice(labels, ref_truth),
                   "truth_nonempty": {r: bool(np.isin(ref_truth, [int(v) for v in ids]).any())
                                      for r, ids in REGIONS.items()},
                   "volume_error": relative_volume_error(result.volumes_ml, true_ml),
                   "predicted_ml": result.volumes_ml, "true_ml": true_ml, "seconds": align_s + result.elapsed_s,
                   "align_s": align_s, "realigned": [str(a.sequence) for a in alignments if a.applied],
                   "flags": list(result.flags)}
            if stages is not None:
                row["stages_s"] = stages
            if ideal is not None and ref_truth is truth:
                row["ceiling_dice"] = region_dice(ideal, truth)
                row["ceiling_volume_error"] = relative_volume_error(_volumes_ml(ideal, result.labels), true_ml)
            if plain is not None:
                rows.append({**row, "run": "complete, plain argmax", "dice": region_dice(plain.labels.array, ref_truth),
                             "volume_error": relative_volume_error(plain.volumes_ml, true_ml),
                             "predicted_ml": plain.volumes_ml})
            if baseline and name == "complete":
                base_labels, base_s, base_stages = sliding_window_baseline(segmenter, vols, net=plain_net, flops=flops)
                row["baseline_s"] = align_s + base_s
                row["baseline_stages_s"] = base_stages
                row["agreement_dice"] = region_dice(labels, base_labels)
                row["baseline_dice"] = region_dice(base_labels, ref_truth)  # on the same grid as ours
                row["disagreement"] = disagreement(labels, base_labels, ref_truth)
            rows.append(row)
            print(f"{visit.study} {scenario:18s} {name:9s} {protocol:22s} "
                  + " ".join(f"{k} {v:.3f}" for k, v in row["dice"].items())
                  + f"  {row['seconds']:.1f} s" + (f"  baseline {row['baseline_s']:.1f} s" if "baseline_s" in row else ""), flush=True)
    return {"model": config.name, "version": config.version, "weights_sha256": sha, "seed": seed,
            "test_time_flips": [list(f) for f in config.test_time_flips], "device": str(segmenter.device),
            "device_name": _device_name(segmenter.device), "rows": rows}


def _device_name(device: Any) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def false_positives(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Predicted volume (mL) of each region over the studies where its truth is empty.

    >>> false_positives([{"truth_nonempty": {"WT": True, "TC": True, "ET": True, "RC": False},
    ...                   "predicted_ml": {"NETC": 1.0, "SNFH": 2.0, "ET": 3.0, "RC": 0.25}}])
    {'RC': {'n': 1, 'median': 0.25, 'max': 0.25}}
    """
    out = {}
    for region, labels in REGIONS.items():
        vols = [sum(float(r["predicted_ml"].get(label.name, 0.0)) for label in labels)
                for r in rows if not r["truth_nonempty"][region]]
        if vols:
            out[region] = {"n": len(vols), "median": statistics.median(vols), "max": max(vols)}
    return out


def network_work(rows: list[dict[str, Any]], *, device: str, peak_tflops: float) -> dict[str, Any]:
    """The network's counted GFLOP per study (ours and the baseline's), the rate each pass reached,
    and on CUDA the ratio of our network time to its FLOP floor (GFLOP / ``peak_tflops``).

    >>> rows = [{"stages_s": {"network": 2.0, "network_gflop": 50.0},
    ...          "baseline_stages_s": {"network": 10.0, "network_gflop": 500.0}}]
    >>> w = network_work(rows, device="cpu", peak_tflops=400.0)
    >>> w["network_gflop"], w["network_gflop_per_s"], "flop_floor" in w
    ({'ours': 50.0, 'baseline': 500.0}, {'ours': 25.0, 'baseline': 50.0}, False)
    >>> network_work(rows, device="cuda:0", peak_tflops=400.0)["flop_floor"]["ratio_median"]
    16000.0
    """
    out: dict[str, Any] = {}
    counted = {"ours": [r["stages_s"] for r in rows if "network_gflop" in r.get("stages_s", {})],
               "baseline": [r["baseline_stages_s"] for r in rows if "network_gflop" in r.get("baseline_stages_s", {})]}
    counted = {k: v for k, v in counted.items() if v}
    if not counted:  # rows of runs before the count existed
        return out
    out["network_gflop"] = {k: statistics.median(s["network_gflop"] for s in v) for k, v in counted.items()}
    out["network_gflop_per_s"] = {k: statistics.median(s["network_gflop"] / s["network"] for s in v)
                                  for k, v in counted.items()}
    if device.startswith("cuda") and "ours" in counted:
        floors = [s["network_gflop"] / (peak_tflops * 1e3) for s in counted["ours"]]
        ratios = [s["network"] / f for s, f in zip(counted["ours"], floors, strict=True)]
        out["flop_floor"] = {"peak_tflops": peak_tflops, "floor_median_s": statistics.median(floors),
                             "network_median_s": statistics.median(s["network"] for s in counted["ours"]),
                             "ratio_median": statistics.median(ratios), "ratio_min": min(ratios)}
    return out


def where_they_differ(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per region over the rows that have both: voxels where ours and the baseline disagree,
    the fraction of them where ours matches the truth, and on how many studies (whose truth has
    the region) each path's Dice against the truth is the higher. Rows of older runs lack it.

    >>> rows = [{"disagreement": {"TC": {"voxels": 10, "ours_right": 7}}, "dice": {"TC": 0.8},
    ...          "baseline_dice": {"TC": 0.7}, "truth_nonempty": {"TC": True}}]
    >>> where_they_differ(rows)["TC"]
    {'voxels': 10, 'ours_right_fraction': 0.7, 'ours_closer': 1, 'baseline_closer': 0, 'studies': 1}
    """
    rows = [r for r in rows if "disagreement" in r and "baseline_dice" in r]
    out: dict[str, dict[str, Any]] = {}
    for region in REGIONS:
        counted = [r for r in rows if region in r["disagreement"]]
        voxels = sum(r["disagreement"][region]["voxels"] for r in counted)
        if not voxels:
            continue
        studies = [r for r in counted if r["truth_nonempty"][region]]
        out[region] = {
            "voxels": voxels,
            "ours_right_fraction": sum(r["disagreement"][region]["ours_right"] for r in counted) / voxels,
            "ours_closer": sum(r["dice"][region] > r["baseline_dice"][region] for r in studies),
            "baseline_closer": sum(r["dice"][region] < r["baseline_dice"][region] for r in studies),
            "studies": len(studies),
        }
    return out


def report(results: dict[str, Any], *, peak_tflops: float = H100_BF16_TFLOPS) -> dict[str, Any]:
    rows = results["rows"]
    out: dict[str, Any] = {}
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[f"{row['run']} | all"].append(row)
        if row["run"] == "complete":
            groups[f"complete | scenario {row['scenario']}"].append(row)
            groups[f"complete | protocol {row['protocol']}"].append(row)
            groups[f"complete | phase {row['phase']}"].append(row)
            et_ml = float(row["true_ml"].get("ET", 0.0))
            if et_ml > 0:
                groups[f"complete | true ET {'>= 1 mL' if et_ml >= 1.0 else '< 1 mL'}"].append(row)
    for key, members in sorted(groups.items()):
        entry = {}
        for region in ("WT", "TC", "ET", "RC"):
            vals = [m["dice"][region] for m in members if m["truth_nonempty"][region]]
            entry[f"dice_{region}"] = statistics.mean(vals) if vals else None
            ideal = [m["ceiling_dice"][region] for m in members if m["truth_nonempty"][region] and "ceiling_dice" in m]
            if ideal and len(ideal) == len(vals):  # a ceiling over only some of the studies would mislead
                entry[f"ceiling_dice_{region}"] = statistics.mean(ideal)
        for label in ("ET", "SNFH"):
            errs = [m["volume_error"][label] for m in members if label in m["volume_error"]]
            entry[f"median_abs_vol_err_{label}"] = statistics.median(errs) if errs else None
            ideal = [m["ceiling_volume_error"][label] for m in members if label in m.get("ceiling_volume_error", {})]
            if ideal and len(ideal) == len(errs):
                entry[f"ceiling_median_abs_vol_err_{label}"] = statistics.median(ideal)
        entry["n"] = len(members)
        out[key] = entry
        print(f"{key:45s} n={entry['n']:2d} " + " ".join(
            f"{k.replace('median_abs_vol_err_', 'volerr_').replace('ceiling_', 'ceil_')}={v:.3f}" for k, v in entry.items() if k != "n" and v is not None), flush=True)
    complete = [r for r in rows if r["run"] == "complete"]
    out["false_positive_ml"] = false_positives(complete)
    for region, entry in out["false_positive_ml"].items():
        print(f"false positives: {region} on the {entry['n']} studies without it: median {entry['median']:.3f} mL, "
              f"max {entry['max']:.3f} mL")
    secs = [r["seconds"] for r in complete]
    out["seconds_per_study"] = {"median": statistics.median(secs), "max": max(secs)}
    out.update(network_work(complete, device=str(results.get("device", "cpu")), peak_tflops=peak_tflops))
    if "network_gflop" in out:
        print(f"network work (convolutions, counted) on {results.get('device_name', '?')}: " + ", ".join(
            f"{k} median {v:.1f} GFLOP at {out['network_gflop_per_s'][k]:.1f} GFLOP/s" for k, v in out["network_gflop"].items()))
    if "flop_floor" in out:
        floor = out["flop_floor"]
        print(f"network time / FLOP floor at {floor['peak_tflops']:g} TFLOP/s: median {floor['ratio_median']:.0f}x, "
              f"min {floor['ratio_min']:.0f}x (floor median {floor['floor_median_s'] * 1e3:.2f} ms, "
              f"network median {floor['network_median_s'] * 1e3:.1f} ms)")
    base = [r for r in complete if "baseline_s" in r]
    if base:
        ratios = [r["baseline_s"] / r["seconds"] for r in base]
        agree = [r["agreement_dice"]["WT"] for r in base]
        out["sliding_window_ratio"] = {"median": statistics.median(ratios), "min": min(ratios),
                                       "max": max(ratios),
                                       "baseline_median_s": statistics.median(r["baseline_s"] for r in base)}
        out["agreement_dice_WT_vs_baseline"] = {"mean": statistics.mean(agree), "min": min(agree)}
        for region in ("TC", "ET", "RC"):
            vals = [r["agreement_dice"][region] for r in base if r["truth_nonempty"][region]]
            if vals:
                out[f"agreement_dice_{region}_vs_baseline"] = {"mean": statistics.mean(vals), "min": min(vals)}
        # which of the two is closer to the truth where they differ (rows of older runs lack it)
        out["baseline_dice_vs_truth"] = {} if not all("baseline_dice" in r for r in base) else {
            region: statistics.mean(r["baseline_dice"][region] for r in base if r["truth_nonempty"][region])
            for region in ("WT", "TC", "ET", "RC") if any(r["truth_nonempty"][region] for r in base)}
        print(f"time per study (preprocessing + inference): median {statistics.median(secs):.1f} s, max {max(secs):.1f} s")
        print(f"  stage align   : median {statistics.median(r['align_s'] for r in base):.2f} s (both paths); "
              f"realigned sequences: {sum(len(r['realigned']) for r in base)}")
        out["stage_align_median_s"] = statistics.median(r["align_s"] for r in base)
        for stage in ("prepare", "network", "labels"):
            ours_s = statistics.median(r["stages_s"][stage] for r in base)
            theirs_s = statistics.median(r["baseline_stages_s"][stage] for r in base)
            out[f"stage_{stage}_median_s"] = {"ours": ours_s, "baseline": theirs_s}
            print(f"  stage {stage:8s}: ours median {ours_s:.2f} s, baseline {theirs_s:.2f} s")
        print(f"plain sliding window 128^3/0.5 / ours: median {statistics.median(ratios):.2f}x, min {min(ratios):.2f}x; "
              f"Dice(WT) ours vs baseline: mean {statistics.mean(agree):.4f}, min {min(agree):.4f}; "
              + ", ".join(f"{k.split('_')[2]} mean {v['mean']:.4f} min {v['min']:.4f}"
                          for k, v in out.items() if k.startswith("agreement_dice_") and "WT" not in k))
        if out["baseline_dice_vs_truth"]:
            print("  the baseline's own Dice against the truth: "
                  + " ".join(f"{k} {v:.3f}" for k, v in out["baseline_dice_vs_truth"].items()))
        out["disagreement"] = where_they_differ(base)
        for region, entry in out["disagreement"].items():
            print(f"  where ours and the baseline differ ({region}): {entry['voxels']} voxels, ours matches the truth "
                  f"on {100 * entry['ours_right_fraction']:.0f} %; Dice against the truth higher for ours on "
                  f"{entry['ours_closer']} of {entry['studies']} studies, for the baseline on {entry['baseline_closer']}")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="bench_segmentation")
    parser.add_argument("--model", default="models/gliowatch-unet")
    parser.add_argument("--patients", type=int, default=5)
    parser.add_argument("--visits", type=int, default=6,
                        help="visits per patient (default 6: pre-op, post-op, post-RT and three follow-ups, "
                             "where the scenarios differ)")
    parser.add_argument("--size", default="demo", choices=("test", "demo"))
    parser.add_argument("--seed", type=int, default=EVAL_SEED,
                        help=f"cohort seed (default {EVAL_SEED}); training and calibration seeds are refused "
                             "(engine.seeds). Ignored with --reuse, which reports the cohort's own")
    parser.add_argument("--no-missing", action="store_true")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ideal-segmenter ceiling")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="keep the generated cohort here")
    parser.add_argument("--reuse", action="store_true", help="evaluate WORK/cohort as it is (no generation)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where both paths run")
    parser.add_argument("--peak-tflops", type=float, default=H100_BF16_TFLOPS,
                        help=f"the GPU's usable dense bf16 TFLOP/s for the FLOP floor (default {H100_BF16_TFLOPS:g}, an H100)")
    parser.add_argument("--test-time-flip", action="append", default=None, metavar="AXES",
                        help="mirrored pass to average, spatial axes comma-separated (repeatable; "
                             "overrides the model's test_time_flips; 'none' for one plain pass)")
    args = parser.parse_args(argv or [])
    if args.reuse and args.work is None:
        parser.error("--reuse needs --work (the folder whose cohort/ to evaluate)")
    cohort_json = args.work / "cohort" / "cohort.json" if args.reuse else None
    if cohort_json is not None and not cohort_json.is_file():
        parser.error(f"--reuse: there is no cohort to reuse ({cohort_json} does not exist); run once without --reuse")
    # the cohort's own seed when it is reused, else the one it will be generated from
    seed = int(json.loads(cohort_json.read_text())["seed"]) if cohort_json is not None else args.seed
    try:
        check_seed_for(seed, purpose="evaluation")
    except ValueError as exc:
        parser.error(str(exc))
    flips = None
    if args.test_time_flip is not None:
        flips = tuple(tuple(int(a) for a in f.split(",")) for f in args.test_time_flip if f != "none")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = evaluate(model_dir=resolve_model_dir(args.model), patients=args.patients, visits=args.visits,
                           size=args.size, work=work, missing=not args.no_missing, baseline=not args.no_baseline,
                           reuse=args.reuse, ceiling=not args.no_ceiling, test_time_flips=flips,
                           device=args.device, seed=seed)
    summary = report(results, peak_tflops=args.peak_tflops)
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, **results}, indent=1, default=str))
    return summary


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
