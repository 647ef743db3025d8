"""The evaluation report's pictures (matplotlib, Agg): a contact sheet per case and one summary.

Slices are shown in radiological convention (patient's left on the image's right), axial, after
reorienting the T1c grid to RAS; labels in the BraTS 2024 colours used across GlioWatch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.orientation import to_ras
from engine.types import Label, Volume

#: label -> RGB (0-1) for overlays.
LABEL_COLOURS: dict[Label, tuple[float, float, float]] = {
    Label.NETC: (0.95, 0.25, 0.25),
    Label.SNFH: (0.25, 0.85, 0.35),
    Label.ET: (1.0, 0.85, 0.1),
    Label.RC: (0.3, 0.55, 1.0),
}
REGION_ORDER = ("WT", "TC", "ET", "SNFH", "NETC", "RC")


def _pyplot():  # noqa: ANN202 - the module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tumour_slices(labels_ras: np.ndarray, *, count: int = 3) -> list[int]:
    """Axial slice indices through the tumour: quartiles of its extent along S (the middle of
    the volume when there is none).

    >>> lab = np.zeros((4, 4, 20), np.uint8); lab[1, 1, 8:13] = 2
    >>> tumour_slices(lab)
    [9, 10, 11]
    """
    z = np.flatnonzero(labels_ras.any(axis=(0, 1)))
    if z.size == 0:
        n = labels_ras.shape[2]
        return [int(round(n * f)) for f in np.linspace(0.35, 0.65, count)]
    return sorted({int(round(v)) for v in np.quantile(z, np.linspace(0.25, 0.75, count))})


def _overlay(ax, image: np.ndarray, labels: np.ndarray | None, title: str) -> None:  # noqa: ANN001
    """One axial slice (RAS arrays) in radiological view with the labels blended in."""
    shown = np.rot90(image)[:, ::-1]  # rows anterior->posterior, columns patient left -> right flipped
    finite = shown[shown > 0]
    top = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    rgb = np.repeat(np.clip(shown / (top or 1.0), 0, 1)[..., None], 3, axis=2)
    if labels is not None:
        lab = np.rot90(labels)[:, ::-1]
        for label, colour in LABEL_COLOURS.items():
            where = lab == int(label)
            rgb[where] = 0.45 * rgb[where] + 0.55 * np.array(colour)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def contact_sheet(
    path: Path, *, case: str, t1c: Volume | None, flair: Volume | None, predicted: Volume,
    reference: np.ndarray | None, caption: str,
) -> Path:
    """T1c and FLAIR with the predicted labels (and the FLAIR with the reference labels, when
    labelled) on three axial slices through the tumour, on the labels' grid."""
    plt = _pyplot()
    pred = to_ras(predicted).array
    ref = to_ras(Volume(reference, predicted.affine)).array if reference is not None else None
    slices = tumour_slices(pred if ref is None or not ref.any() else ref)
    rows: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    for name, vol in (("T1c", t1c), ("FLAIR", flair)):
        image = to_ras(vol).array.astype(np.float32) if vol is not None else None
        if image is not None and image.shape != pred.shape:
            image = None  # not on the labels' grid: shown as absent rather than misaligned
        rows.append((f"{name} + model", image, pred))
    if ref is not None:
        rows.append(("FLAIR + reference", rows[1][1] if rows[1][1] is not None else rows[0][1], ref))
    fig, axes = plt.subplots(len(rows), len(slices), figsize=(2.6 * len(slices), 2.7 * len(rows)), squeeze=False)
    for r, (title, image, labels) in enumerate(rows):
        for c, k in enumerate(slices):
            ax = axes[r][c]
            if image is None:
                ax.text(0.5, 0.5, "not available", ha="center", va="center", fontsize=8)
                ax.axis("off")
                continue
            _overlay(ax, image[:, :, k], labels[:, :, k] if labels is not None else None, f"{title}, axial {k}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in LABEL_COLOURS.values()]
    fig.legend(handles, [label.name for label in LABEL_COLOURS], loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"{case}: {caption}", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def summary_figure(
    path: Path, *, dice: Mapping[str, Sequence[float]], lesion_dice: Mapping[str, Sequence[float]],
    volumes: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str,
) -> Path:
    """Box plots of voxel- and lesion-wise Dice per region, and a Bland-Altman plot per label
    (predicted - reference mL against their mean)."""
    plt = _pyplot()
    labels = [name for name in volumes if len(volumes[name][0])]
    cols = max(2, len(labels))
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 6.4), squeeze=False)
    for ax, data, name in ((axes[0][0], dice, "voxel-wise Dice"), (axes[0][1], lesion_dice, "lesion-wise Dice")):
        regions = [r for r in REGION_ORDER if len(data.get(r, ()))]
        if regions:
            ax.boxplot([list(data[r]) for r in regions], tick_labels=regions, showmeans=True)
            for i, r in enumerate(regions, start=1):
                ax.scatter(np.full(len(data[r]), i), data[r], s=10, alpha=0.7)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(name, fontsize=9)
    for ax in axes[0][2:]:
        ax.axis("off")
    for i, name in enumerate(labels):
        ax = axes[1][i]
        pred, ref = (np.asarray(v, float) for v in volumes[name])
        mean, diff = (pred + ref) / 2.0, pred - ref
        ax.scatter(mean, diff, s=14)
        if diff.size >= 2:
            bias, sd = diff.mean(), diff.std(ddof=1)
            for y, style in ((bias, "-"), (bias - 1.96 * sd, "--"), (bias + 1.96 * sd, "--")):
                ax.axhline(y, linestyle=style, linewidth=0.8)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_title(f"{name}: Bland-Altman (mL)", fontsize=9)
        ax.set_xlabel("mean of model and reference", fontsize=8)
        ax.set_ylabel("model - reference", fontsize=8)
    for ax in axes[1][len(labels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
