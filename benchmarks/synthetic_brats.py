"""Write synthetic cases in the BraTS layout, for ``gliowatch evaluate`` on data whose truth is exact.

``python -m benchmarks.synthetic_brats --out DIR [--cases N] [--seed S] [--stripped]``

Each case is one visit of the training generator (:func:`engine.modelling.synth.training._draw_visit`): the
four sequences rendered on the generator's 1 mm head grid (co-registered, as BraTS data are),
Rician noise, and its labels (BraTS 2024 numbering) as ``<case>-seg.nii.gz``. With ``--stripped``
everything outside the brain (parenchyma, tumour and the CSF between them, holes filled) is set to
zero, as BraTS skull-stripping does. Seeds start at ``--seed`` (default 930000, apart from the
training seeds 200000..200199 and the held-out cohort seeds).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: BraTS file suffix per sequence.
SUFFIXES = {"T1": "t1n", "T1c": "t1c", "T2": "t2w", "FLAIR": "t2f"}


def write_case(out_dir: Path, seed: int, *, stripped: bool) -> Path:
    from scipy import ndimage

    from engine.dicom.nifti import write_nifti
    from engine.modelling.synth.acquisition import add_rician_noise
    from engine.modelling.synth.contrast import render_sequence
    from engine.modelling.synth.training import _draw_visit
    from engine.types import STUDY_SEQUENCES, Volume

    rng = np.random.default_rng([int(seed), 0xB7A5])
    head, scenario, index, visit, maps = _draw_visit(rng, 1.0, None, None)
    name = f"SYN-{seed}-{'stripped' if stripped else 'head'}"
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    brain = np.ones(head.shape, bool)
    if stripped:
        tissue = (head.brain > 0.3) | (maps.labels > 0)
        brain = ndimage.binary_fill_holes(ndimage.binary_closing(tissue, iterations=3))
    for sequence in STUDY_SEQUENCES:
        image = render_sequence(head=head, tumour=maps, sequence=sequence, rng=rng, jitter=0.1)
        image = add_rician_noise(image, rng, sigma=float(rng.uniform(0.01, 0.03))) * brain
        write_nifti(Volume(image.astype(np.float32), head.affine.copy()),
                    folder / f"{name}-{SUFFIXES[sequence.value]}.nii.gz", force=True)
    write_nifti(Volume(maps.labels.astype(np.uint8), head.affine.copy()), folder / f"{name}-seg.nii.gz", force=True)
    (folder / "scenario.txt").write_text(f"{scenario.value} visit {index} {visit.phase.value}\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--seed", type=int, default=930000)
    parser.add_argument("--stripped", action="store_true", help="zero everything outside the brain")
    args = parser.parse_args(argv)
    for seed in range(args.seed, args.seed + args.cases):
        print(write_case(args.out, seed, stripped=args.stripped))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
