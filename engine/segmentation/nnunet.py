"""An nnU-Net v2 trained-model folder as a :class:`~engine.segmentation.result.Segmenter`.

The model runs through nnunetv2's own ``nnUNetPredictor`` (its preprocessing: crop to the
non-zero region, normalisation, resampling to the plans' spacing; its sliding window with the
Gaussian weighting, test-time mirroring and the fold ensemble; its resampling back), not a
reimplementation. GlioWatch only prepares the input and reads the output:

1. the study must hold every sequence of the model's ``channel_names`` (else
   :class:`~engine.errors.SegmentationError`, naming the model, the study and the sequence);
2. every channel is resampled (trilinear, in world space) onto the native reference grid (T1c,
   else T1, else the model's first channel), after the optional rigid realignment
   (:mod:`engine.segmentation.alignment`); the reference itself is not resampled;
3. the stack is handed over in the axis order of the model's reader: what ``SimpleITKIO`` (z, y, x)
   or ``NibabelIO`` (x, y, z) would give for the reference written as NIfTI, with the spacing in
   the same order, so the result equals ``nnUNetv2_predict`` on those files
   (benchmarks/bench_nnunet_parity.py);
4. the output label values are mapped to NETC/SNFH/ET/RC (:mod:`engine.segmentation.nnunet_folder`)
   and the volumes measured on the reference grid.

nnunetv2 and torch are imported when a segmenter is built.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from engine.errors import ConfigError, SegmentationError
from engine.segmentation.nnunet_folder import NnUNetFolder, read_nnunet_folder
from engine.segmentation.result import SegmentationResult
from engine.segmentation.sanity import SanityLimits, label_volumes_ml, sanity_flags
from engine.types import Label, Sequence, Volume

#: the reference grid (labels and volumes) when present, best first.
REFERENCE_ORDER: tuple[Sequence, ...] = (Sequence.T1C, Sequence.T1)
TUMOUR_VALUES = [int(Label.NETC), int(Label.SNFH), int(Label.ET)]
HEAD_TOLERANCE_VOX = 2


def load_predictor(folder: NnUNetFolder, *, device: str, mirroring: bool, tile_step_size: float) -> Any:
    """nnunetv2's ``nnUNetPredictor`` for ``folder``'s folds on ``device`` (a ``ConfigError`` when
    nnunetv2 is not installed or the folder does not load)."""
    import torch

    from engine.segmentation.inference import select_device

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # nnunetv2 prints its path settings on import
            from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    except ImportError as exc:
        msg = f"nnU-Net model {folder.name} needs the nnunetv2 package"
        raise ConfigError(msg, action="pip install nnunetv2==2.8.1 (see requirements.lock).", detail=str(exc)) from exc
    torch_device = select_device(device)
    with contextlib.redirect_stdout(io.StringIO()):
        predictor = nnUNetPredictor(
            tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=mirroring,
            perform_everything_on_device=torch_device.type == "cuda", device=torch_device,
            verbose=False, verbose_preprocessing=False, allow_tqdm=False,
        )
        try:
            predictor.initialize_from_trained_model_folder(str(folder.root), use_folds=folder.folds)
        except ImportError as exc:  # nnunetv2 imports trainer modules while looking the trainer up by name
            msg = f"nnU-Net model {folder.name}: nnunetv2 cannot import what its trainer needs ({exc.name or exc})"
            raise ConfigError(msg, action="Install that package (a Primus trainer needs timm<1.0.23 and torchvision "
                              "matching torch), or use a model trained with nnUNetTrainer.", detail=repr(exc)) from exc
        except (RuntimeError, KeyError, ValueError, OSError) as exc:
            msg = f"nnU-Net model {folder.name}: the trained-model folder does not load"
            raise ConfigError(msg, detail=repr(exc)[:2000]) from exc
    return predictor


class NnUNetSegmenter:
    """A trained nnU-Net v2 folder (any subset of folds, ensembled) as a segmenter."""

    def __init__(
        self,
        *,
        model_dir: Path | str,
        labels: str | Mapping[Any, Any] = "brats2024-post",
        folds: tuple[str, ...] = (),
        mirroring: bool = True,
        device: str = "auto",
        name: str = "",
        tile_step_size: float = 0.5,
        align_sequences: bool = False,
        limits: SanityLimits = SanityLimits(),
    ) -> None:
        decoding = {"mirroring": mirroring, "tile_step_size": tile_step_size, "align_sequences": align_sequences}
        self.folder = read_nnunet_folder(model_dir, labels=labels, folds=folds, name=name, decoding=decoding)
        self.name = f"nnunet:{self.folder.name}"
        self.mirroring = mirroring
        self.align_sequences = align_sequences
        self.limits = limits
        self.predictor = load_predictor(self.folder, device=device, mirroring=mirroring, tile_step_size=tile_step_size)
        self.device = str(self.predictor.device)
        #: nnunetv2 loads each fold's weights into one network in turn: one prediction at a time.
        self._lock = threading.Lock()
        self.label_lut = np.zeros(256, dtype=np.uint8)
        for value, label in self.folder.labels.items():
            self.label_lut[value] = int(label)

    @property
    def required_sequences(self) -> tuple[Sequence, ...]:
        return self.folder.channels

    def segment(self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None) -> SegmentationResult:
        start = time.perf_counter()
        missing = [str(s) for s in self.folder.channels if s not in volumes]
        if missing:
            msg = f"Model {self.name} needs {', '.join(missing)}, which the study lacks"
            raise SegmentationError(msg, exam=exam, action="Configure a model for the sequences present "
                                    "(segmentation.models) or add the missing series.")
        reference_sequence = next((s for s in REFERENCE_ORDER if s in volumes), self.folder.channels[0])
        volumes, alignments = self._aligned(volumes, reference_sequence)
        reference = volumes[reference_sequence]
        stack = model_input(volumes, channels=self.folder.channels, reference=reference)
        labels = self.predict_labels(stack, spacing_mm=reference.spacing_mm)
        if labels.shape != reference.array.shape:
            msg = f"Model {self.name} returned labels of shape {labels.shape} for a grid of {reference.array.shape}"
            raise SegmentationError(msg, exam=exam)
        return self._result(labels, reference, reference_sequence, alignments, start)

    def predict_labels(self, stack: np.ndarray, *, spacing_mm: tuple[float, float, float]) -> np.ndarray:
        """(C, X, Y, Z) channels on one grid -> GlioWatch labels (X, Y, Z) through nnunetv2."""
        return self.predict(stack, spacing_mm=spacing_mm)[0]

    def predict(self, stack: np.ndarray, *, spacing_mm: tuple[float, float, float],
                probabilities: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Labels (X, Y, Z) and, with ``probabilities``, nnU-Net's class probabilities
        (K, X, Y, Z; K = background + the model's labels, in its own order)."""
        spacing = [float(s) for s in spacing_mm]
        if self.folder.axes == "zyx":
            stack, spacing = np.ascontiguousarray(stack.transpose(0, 3, 2, 1)), spacing[::-1]
        with self._lock:
            output = self.predictor.predict_single_npy_array(stack, {"spacing": spacing},
                                                             save_or_return_probabilities=probabilities)
        values, maps = (output if probabilities else (output, None))
        values = np.asarray(values)
        if self.folder.axes == "zyx":
            values = values.transpose(2, 1, 0)
            maps = None if maps is None else np.asarray(maps).transpose(0, 3, 2, 1)
        return self.label_lut[values.astype(np.uint8)], maps

    def _aligned(self, volumes: Mapping[Sequence, Volume], reference: Sequence) -> tuple[Mapping[Sequence, Volume], tuple]:
        if not self.align_sequences or len(volumes) < 2:
            return volumes, ()
        from engine.segmentation.alignment import align_sequences

        return align_sequences(volumes, reference=reference)

    def _result(self, labels: np.ndarray, reference: Volume, reference_sequence: Sequence, alignments: tuple,
                start: float) -> SegmentationResult:
        from engine.segmentation.preprocess import head_mask_of

        volumes_ml = label_volumes_ml(labels, voxel_ml=reference.voxel_ml)
        head = head_mask_of(np.asarray(reference.array, dtype=np.float32))
        tumour = np.isin(labels, TUMOUR_VALUES)
        outside = tumour & ~ndimage.binary_dilation(head, iterations=HEAD_TOLERANCE_VOX) if tumour.any() else tumour
        flags = tuple(a.flag for a in alignments if a.flag) + sanity_flags(
            volumes_ml=volumes_ml, tumour_voxels=int(tumour.sum()), tumour_outside_head_voxels=int(outside.sum()),
            head_ml=float(head.sum()) * reference.voxel_ml, limits=self.limits)
        folder = self.folder
        metadata: dict[str, Any] = {
            "model_name": self.name, "model_version": folder.version, "weights_sha256": folder.weights_sha256,
            "config_sha256": folder.config_sha256, "reference_sequence": str(reference_sequence),
            "nnunet_folds": list(folder.folds), "nnunet_mirroring": self.mirroring,
            "nnunet_labels": {str(v): lab.name for v, lab in sorted(folder.labels.items())},
        }
        if alignments:
            metadata["alignment"] = {str(a.sequence): a.reason for a in alignments}
        return SegmentationResult(
            labels=Volume(labels, reference.affine.copy(), metadata), volumes_ml=volumes_ml, flags=flags,
            model_name=self.name, model_version=folder.version, weights_sha256=folder.weights_sha256,
            config_sha256=folder.config_sha256, device=self.device, elapsed_s=time.perf_counter() - start,
        )


def model_input(volumes: Mapping[Sequence, Volume], *, channels: tuple[Sequence, ...], reference: Volume) -> np.ndarray:
    """(C, X, Y, Z) float32: each channel on the reference grid (the reference as it is)."""
    from engine.segmentation.preprocess import resample_to_grid

    shape = reference.array.shape
    stack = np.zeros((len(channels), *shape), dtype=np.float32)
    for index, seq in enumerate(channels):
        volume = volumes[seq]
        same_grid = volume.array.shape == shape and np.allclose(volume.affine, reference.affine, atol=1e-4)
        stack[index] = volume.array if same_grid else resample_to_grid(
            volume, affine=reference.affine, shape=shape).numpy()  # type: ignore[arg-type]
    return stack


__all__ = ["NnUNetSegmenter", "load_predictor", "model_input"]
