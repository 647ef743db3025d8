"""`gliowatch models list` and `gliowatch models check NAME`: the segmentation model registry.

``list`` shows every model the settings name (``[[segmentation.models]]``, then the implicit
``default`` and ``skull-stripped``) with whether it loads here and, if not, why. ``check`` loads
one, runs it on a small synthetic study (``engine.modelling.synth``; truth volumes printed beside
the model's) and prints the timings; it exits 1 with the reason when the model fails.
"""

from __future__ import annotations

import argparse
import time

from engine.errors import GlioWatchError
from engine.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the segmentation models or check one")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="the configured models and whether each loads").set_defaults(handler=run)
    check = sub.add_parser("check", help="load a model and run it on a small synthetic study")
    check.add_argument("name", help="model name (gliowatch models list)")
    check.add_argument("--spacing-mm", type=float, default=2.0, help="grid of the synthetic study (default 2 mm)")
    check.add_argument("--seed", type=int, default=7, help="synthetic study seed")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.models_command == "list":
        return list_models(settings)
    return check_model(settings, args.name, spacing_mm=args.spacing_mm, seed=args.seed)


def list_models(settings: Settings) -> int:
    from engine.segmentation import resolve_model_dir
    from engine.segmentation.registry import build_segmenter, registry_entries, required_sequences

    seg = settings.segmentation
    print(f"{'name':<16} {'kind':<12} {'space':<11} {'sequences':<22} {'loadable':<8} path")
    for entry in registry_entries(seg):
        try:
            build_segmenter(entry, seg)
            loadable = "yes"
        except GlioWatchError as exc:
            loadable = f"no       ({exc.message})"
        sequences = ",".join(str(s) for s in required_sequences(entry)) or "T1c|T1"
        print(f"{entry.name:<16} {entry.kind:<12} {entry.space:<11} {sequences:<22} {loadable:<8} "
              f"{resolve_model_dir(entry.path)}")
    return 0


def check_model(settings: Settings, name: str, *, spacing_mm: float, seed: int) -> int:
    from engine.modelling.synth.training import sample_training_case
    from engine.segmentation.registry import build_segmenter, find_entry
    from engine.types import STUDY_SEQUENCES, Volume

    seg = settings.segmentation
    try:
        entry = find_entry(seg, name)
        started = time.perf_counter()
        segmenter = build_segmenter(entry, seg)
        load_s = time.perf_counter() - started
        case = sample_training_case(seed, spacing_mm=spacing_mm, normalize=False, thick_slice_probability=0.0)
        volumes = {s: Volume(case.images[i], case.affine.copy()) for i, s in enumerate(STUDY_SEQUENCES)}
        result = segmenter.segment(volumes, exam=f"synthetic study (seed {seed}, {spacing_mm:g} mm)")
    except GlioWatchError as exc:
        print(f"model {name}: FAILED: {exc}")
        return 1
    print(f"model {name}: OK ({result.model_name} {result.model_version}, device {result.device})")
    print(f"  weights sha256 {result.weights_sha256}  config sha256 {result.config_sha256}")
    shape = "x".join(str(n) for n in case.images.shape[1:])
    print(f"  load {load_s:.2f} s, segment {result.elapsed_s:.2f} s on a {shape} grid of {spacing_mm:g} mm")
    for label, ml in result.volumes_ml.items():
        print(f"  {label:<5} {ml:8.1f} mL   (synthetic truth {case.volumes_ml.get(label, 0.0):8.1f} mL)")
    if result.flags:
        print(f"  flags: {', '.join(result.flags)}")
    return 0
