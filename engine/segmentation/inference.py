"""The shipped GlioWatch model behind the :class:`Segmenter` protocol.

Whole-volume inference on the cropped working grid when it fits (``max_whole_volume_vox``),
MONAI sliding window otherwise; class probabilities are resampled (trilinear, world space) onto
the reference grid before the argmax, so labels come out at the T1c's own resolution.
CUDA runs under bf16 autocast; the CPU path uses every core. Deterministic: no dropout, no
randomness, deterministic kernels where torch offers them.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from engine.errors import SegmentationError
from engine.segmentation.model_config import ModelConfig
from engine.arrays import bounding_box
from engine.segmentation.preprocess import PreparedStudy, prepare_study
from engine.segmentation.result import SegmentationResult
from engine.segmentation.sanity import (
    TUMOUR_LABELS, SanityLimits, label_volumes_ml, remove_small_cavities, sanity_flags,
)
from engine.types import Label, Sequence, Volume

if TYPE_CHECKING:
    import torch

#: tumour within this many working voxels of the head mask does not count as outside the brain.
HEAD_TOLERANCE_VOX = 2


def select_device(name: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU with every core; or ``cpu`` / ``cuda[:n]``."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        msg = f"Segmentation device {name!r} was requested but CUDA is not available"
        raise SegmentationError(msg, action="Set segmentation.device to 'auto' or 'cpu'.")
    if name == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    return torch.device(name)


def run_network(
    net: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    device: torch.device,
    max_whole_volume_vox: tuple[int, int, int],
    roi_vox: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """Logits (K, X, Y, Z) in fp32 on the CPU for one (C, X, Y, Z) image.

    On the CPU the batch goes in as ``channels_last_3d`` (see :func:`for_device`).
    """
    import torch
    from monai.inferers import sliding_window_inference

    batch = image[None].to(device)
    if device.type == "cpu":
        batch = batch.contiguous(memory_format=torch.channels_last_3d)
    fits = all(s <= m for s, m in zip(image.shape[1:], max_whole_volume_vox, strict=True))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    with torch.inference_mode(), autocast:
        if fits:
            logits = net(batch)
        else:
            roi = roi_vox or tuple(min(s, m) for s, m in zip(image.shape[1:], max_whole_volume_vox, strict=True))
            logits = sliding_window_inference(
                batch, roi_size=roi, sw_batch_size=4 if device.type == "cuda" else 1,
                predictor=net, overlap=0.25, mode="gaussian",
            )
    return logits[0].float().cpu()


def fold_for_inference(net: torch.nn.Module) -> int:
    """Fold eval-mode batch norm into the convolution before it, in place; return how many.

    A MONAI ``Convolution`` block is ``conv`` then ``adn`` (norm, dropout, activation). In eval
    mode its ``BatchNorm3d`` is an affine map per channel, so it folds into the convolution's
    weights and bias (``torch.nn.utils.fusion``; transposed convolutions too) and the norm
    becomes an identity. A single-parameter ``PReLU`` becomes the equal ``LeakyReLU`` with that
    slope, in place (the same values; PyTorch's CPU ``prelu`` kernel is slow on ``channels_last_3d``;
    with the norm folded the activation's input is the convolution's fresh output).
    Blocks of other layouts (norm before convolution, as in SegResNet) are left as they are.
    Measured on the 2-core CPU for gliowatch-unet: see :func:`for_device`.
    """
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    folded = 0
    with torch.no_grad():
        for module in net.modules():
            conv, adn = getattr(module, "conv", None), getattr(module, "adn", None)
            if (not isinstance(conv, nn.Conv3d | nn.ConvTranspose3d) or not isinstance(adn, nn.Module)
                    or adn.training):  # only eval mode: training needs the norm and the learnable slope
                continue
            norm = getattr(adn, "N", None)
            if isinstance(norm, nn.BatchNorm3d) and norm.track_running_stats:
                weight, bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, norm.running_mean, norm.running_var, norm.eps, norm.weight, norm.bias,
                    transpose=isinstance(conv, nn.ConvTranspose3d),
                )
                conv.weight, conv.bias = weight, bias
                adn.N = nn.Identity()
                folded += 1
            act = getattr(adn, "A", None)
            if isinstance(act, nn.PReLU) and act.weight.numel() == 1:
                adn.A = nn.LeakyReLU(float(act.weight.detach()), inplace=True)  # on the convolution's own output
    return folded


def residual_adds_in_place(net: torch.nn.Module) -> int:
    """Let every eval-mode MONAI ``ResidualUnit`` of ``net`` add its residual into its convolution
    path's fresh output instead of a new tensor, in place; return how many.

    ``ResidualUnit.forward`` returns ``conv(x) + residual(x)``: one more full-size activation per
    unit, which on this CPU costs mostly page faults on freshly mapped memory. ``conv(x)`` is a new
    tensor made inside the unit, so adding into it gives the same values (the same single add per
    element, bit for bit) without the allocation. With autograd on (training, or any caller that
    asks for gradients) the unit adds out of place as before. Measured on the 2-core CPU: see
    :func:`for_device`.
    """
    from monai.networks.blocks.convolutions import ResidualUnit

    in_place = _in_place_residual_unit()
    changed = 0
    for module in net.modules():
        if type(module) is ResidualUnit and not module.training:
            module.__class__ = in_place
            changed += 1
    return changed


@functools.cache
def _in_place_residual_unit() -> type:
    import torch
    from monai.networks.blocks.convolutions import ResidualUnit

    class InPlaceResidualUnit(ResidualUnit):
        """:class:`ResidualUnit` whose sum goes into the convolution path's output (no autograd)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            res = self.residual(x)
            cx = self.conv(x)
            if torch.is_grad_enabled() or cx is x or cx is res:
                return cx + res
            return cx.add_(res)

    return InPlaceResidualUnit


def for_device(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``net`` (in place) on ``device`` in eval mode; on the CPU with batch norm folded into the
    convolutions (:func:`fold_for_inference`) and ``channels_last_3d`` weights.

    Measured on the 2-core CPU (oneDNN, AVX2), gliowatch-unet on a 4 x 144 x 176 x 144 input:
    1.25 s -> 0.96 s per pass with ``channels_last_3d``, largest logit difference 3e-5
    (summation order). Folding on top, on a 4 x 160 x 192 x 160 input: 0.75 s -> 0.60 s per
    pass (1.24-1.27x over three passes; 1.11-1.16x with an out-of-place activation), largest
    logit difference 3.4e-5, the same argmax at every voxel. The residual sums in place on top
    (:func:`residual_adds_in_place`), on the largest demo study (4 x 224 x 288 x 240), the whole
    probability map three times each way in one process, twice: 2.95-3.59 s and 2.63-2.68 s per
    study before, 1.96-2.57 s and 1.93-2.20 s after, the probabilities equal bit for bit. CUDA
    keeps the network as loaded (not measured there).
    """
    import torch

    net = net.to(device).eval()
    if device.type == "cpu":
        fold_for_inference(net)
        residual_adds_in_place(net)
        net = net.to(memory_format=torch.channels_last_3d)
    return net


def resample_channels(
    channels: torch.Tensor,
    *,
    source_affine: np.ndarray,
    reference: Volume,
    box: tuple[tuple[int, int], ...] | None = None,
) -> torch.Tensor:
    """(K, ...) maps on the working grid -> (K, ...) on the reference grid (trilinear, world space).

    ``box`` ((lo, hi) per axis, reference voxel indices) limits the output to that sub-grid.
    Outside the working grid's field of view every channel resamples to zero.
    """
    from engine.segmentation.resample import resample_world

    box = box or tuple((0, int(n)) for n in reference.array.shape)
    shift = np.eye(4)
    shift[:3, 3] = [lo for lo, _ in box]
    return resample_world(channels, source_affine=source_affine, target_affine=reference.affine @ shift,
                          shape=tuple(hi - lo for lo, hi in box))


def foreground_box(
    foreground: np.ndarray, *, source_affine: np.ndarray, reference: Volume
) -> tuple[tuple[int, int], ...] | None:
    """The reference-grid box that holds every voxel the foreground can reach by interpolation.

    Trilinear weights are convex, so a reference voxel whose 8 working-grid neighbours all decode
    to background decodes to background too; the box of the foreground dilated by one working
    voxel, mapped to the reference grid (+1 voxel), is therefore exact. ``None`` when empty.
    """
    if not foreground.any():
        return None
    # the box of the foreground dilated by one voxel (face connectivity, clipped to the grid)
    first, last = bounding_box(foreground, margin=1)
    lo, hi = first - 1.0, last.astype(float)
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    ref_vox = (np.linalg.inv(reference.affine) @ source_affine @ corners.T).T[:, :3]
    shape = reference.array.shape
    low = np.clip(np.floor(ref_vox.min(0)).astype(int) - 1, 0, shape)
    high = np.clip(np.ceil(ref_vox.max(0)).astype(int) + 2, 0, shape)
    if np.any(high <= low):
        return None
    return tuple((int(a), int(b)) for a, b in zip(low, high, strict=True))


def softmax_decoder(
    output_labels: Mapping[int, Label], weights: Mapping[Label, float] | None = None
) -> Callable[[torch.Tensor], np.ndarray]:
    """Argmax of (weighted) class probabilities, channel -> label through ``output_labels``.

    ``weights`` per label (default 1: the plain argmax) come from the model's calibration
    (:mod:`engine.segmentation.decision`). Where every probability resampled to zero (outside
    the working grid) background wins.
    """
    from engine.segmentation.decision import channel_weights, decide, label_lut

    def decode(probabilities: torch.Tensor) -> np.ndarray:
        k = probabilities.shape[0]
        return decide(probabilities.numpy(), weights=channel_weights(output_labels, weights),
                      lut=label_lut(output_labels, k))

    return decode


class MonaiSegmenter:
    """The shipped model (config.json + weights) as a :class:`Segmenter`."""

    def __init__(
        self,
        *,
        config: ModelConfig,
        net: torch.nn.Module,
        weights_sha256: str,
        device: str = "auto",
        limits: SanityLimits = SanityLimits(),
        align_sequences: bool = False,
    ) -> None:
        import torch

        self.config = config
        self.align_sequences = align_sequences
        self.device = select_device(device)
        self.net = for_device(net, self.device)
        self.weights_sha256 = weights_sha256
        self.config_sha256 = config.config_sha256()
        self.limits = limits
        torch.use_deterministic_algorithms(True, warn_only=True)

    def prepare(self, volumes: Mapping[Sequence, Volume]) -> PreparedStudy:
        return prepare_study(
            volumes,
            channels=self.config.channels,
            spacing_mm=self.config.spacing_mm,
            divisible_by=self.config.divisible_by,
            align=self.align_sequences,
        )

    def predict_probabilities(self, prepared: PreparedStudy) -> torch.Tensor:
        """Softmax probabilities (K, X, Y, Z) on the cropped working grid.

        With ``test_time_flips`` in the model's config, the mean over the plain pass and one
        mirrored pass per entry (each flipped back before averaging).
        """
        import torch

        def probabilities(image: torch.Tensor) -> torch.Tensor:
            return run_network(self.net, image, device=self.device,
                               max_whole_volume_vox=self.config.max_whole_volume_vox).softmax(0)

        total = probabilities(prepared.image)
        if not self.config.test_time_flips:
            return total  # no mean to take (a division by 1 would only copy the maps)
        for axes in self.config.test_time_flips:
            dims = tuple(a + 1 for a in axes)  # channel first
            total += torch.flip(probabilities(torch.flip(prepared.image, dims=dims)), dims=dims)
        return total / (1 + len(self.config.test_time_flips))

    def segment(
        self, volumes: Mapping[Sequence, Volume], *, exam: str | None = None
    ) -> SegmentationResult:
        start = time.perf_counter()
        try:
            prepared = self.prepare(volumes)
        except SegmentationError as exc:
            raise SegmentationError(exc.message, exam=exam, action=exc.action, detail=exc.detail) from exc
        return self.finish(self.predict_probabilities(prepared), prepared=prepared, start=start)

    def finish(
        self, probabilities: torch.Tensor, *, prepared: PreparedStudy, start: float, weighted: bool = True
    ) -> SegmentationResult:
        """:func:`finish_result` for this model: its decision rule (``weighted=False``: the plain
        argmax), identity and test-time flips."""
        weights = self.config.decision_weights if weighted else None
        return finish_result(
            probabilities,
            prepared=prepared,
            decode=softmax_decoder(self.config.output_labels, weights),
            limits=self.limits,
            identity=(self.config.name, self.config.version, self.weights_sha256, self.config_sha256,
                      str(self.device)),
            start=start,
            test_time_flips=self.config.test_time_flips,
            min_cavity_ml=self.config.min_cavity_ml,
        )


def finish_result(
    probabilities: torch.Tensor,
    *,
    prepared: PreparedStudy,
    decode: Callable[[torch.Tensor], np.ndarray],
    limits: SanityLimits,
    identity: tuple[str, str, str, str, str],
    start: float,
    test_time_flips: tuple[tuple[int, ...], ...] = (),
    min_cavity_ml: float = 0.0,
) -> SegmentationResult:
    """Labels on the reference grid, volumes, flags (missing sequences first), timing.

    ``identity`` is (model name, version, weights SHA-256, config SHA-256, device).
    The label volume's metadata says which model made it, on which reference, what the
    sequence alignment decided and which mirrored passes were averaged (``test_time_flips``,
    when any), so a stored result can be reproduced.

    Only the box around the working-grid foreground is resampled onto the (usually much finer)
    reference grid; the sanity checks that need the head run on the working grid. Cavity
    components under ``min_cavity_ml`` become background there (the model config's
    ``min_cavity_ml``; the mL removed go into the metadata).
    """
    reference = prepared.reference
    working_labels = decode(probabilities)
    labels = np.zeros(reference.array.shape, dtype=np.uint8)
    box = foreground_box(working_labels != 0, source_affine=prepared.working_affine, reference=reference)
    if box is not None:
        maps = resample_channels(probabilities, source_affine=prepared.working_affine, reference=reference, box=box)
        labels[tuple(slice(lo, hi) for lo, hi in box)] = decode(maps)
    labels, cavity_removed_ml = remove_small_cavities(labels, voxel_ml=reference.voxel_ml, min_ml=min_cavity_ml)
    volumes_ml = label_volumes_ml(labels, voxel_ml=reference.voxel_ml)
    tumour = np.isin(working_labels, [int(v) for v in TUMOUR_LABELS])
    outside_head = tumour & ~prepared.head_mask
    if outside_head.any():  # only then can the tolerance band matter
        outside_head &= ~ndimage.binary_dilation(prepared.head_mask, iterations=HEAD_TOLERANCE_VOX)
    working_voxel_ml = float(abs(np.linalg.det(prepared.working_affine[:3, :3]))) / 1000.0
    sanity = sanity_flags(
        volumes_ml=volumes_ml,
        # both counts on the working grid; "empty" means empty where people look (the reference grid)
        tumour_voxels=int(tumour.sum()) if np.isin(labels, [int(v) for v in TUMOUR_LABELS]).any() else 0,
        tumour_outside_head_voxels=int(outside_head.sum()),
        head_ml=float(prepared.head_mask.sum()) * working_voxel_ml,
        limits=limits,
    )
    realigned = tuple(a.flag for a in prepared.alignments if a.flag)
    flags = tuple(f"missing_sequence:{s}" for s in prepared.missing) + realigned + sanity
    name, version, sha, config_sha, device = identity
    metadata = {
        "model_name": name,
        "model_version": version,
        "weights_sha256": sha,
        "config_sha256": config_sha,
        "reference_sequence": str(prepared.reference_sequence),
    }
    if prepared.alignments:
        metadata["alignment"] = {str(a.sequence): a.reason for a in prepared.alignments}
    if test_time_flips:
        metadata["test_time_flips"] = [list(f) for f in test_time_flips]
    if min_cavity_ml:
        metadata["min_cavity_ml"] = min_cavity_ml
        metadata["cavity_removed_ml"] = round(cavity_removed_ml, 3)
    return SegmentationResult(
        labels=Volume(labels, reference.affine.copy(), metadata),
        volumes_ml=volumes_ml,
        flags=flags,
        model_name=name,
        model_version=version,
        weights_sha256=sha,
        config_sha256=config_sha,
        device=device,
        elapsed_s=time.perf_counter() - start,
    )
