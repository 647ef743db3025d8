"""Signal of each tissue and tumour sub-region per sequence, and the noise-free rendering.

Relative intensities (white matter on T1 = 0.85) follow the textbook appearance of treated
glioma: T1 WM > GM > CSF; T1c adds a bright enhancing rim (ET) and mild dural enhancement;
T2 CSF brightest, oedema and cavity bright, WM dark; FLAIR suppresses CSF and cavity fluid
while oedema is the brightest tissue. Necrosis is dark on T1/T1c and bright on T2.
"""

from __future__ import annotations

import numpy as np

from engine.modelling.synth.anatomy import HeadModel, Tissue
from engine.modelling.synth.tumour import TumourMaps
from engine.types import Label, Sequence

#: mean signal per (sequence, tissue); tuple order T1, T1c, T2, FLAIR.
_TISSUE_SIGNAL: dict[Tissue, tuple[float, float, float, float]] = {
    Tissue.WM: (0.85, 0.86, 0.32, 0.42),
    Tissue.GM: (0.62, 0.64, 0.50, 0.60),
    Tissue.CSF: (0.22, 0.24, 1.00, 0.08),
    Tissue.BONE: (0.03, 0.03, 0.03, 0.03),
    Tissue.MARROW: (0.80, 0.82, 0.55, 0.50),
    Tissue.MUSCLE: (0.42, 0.46, 0.28, 0.32),
    Tissue.FAT: (0.95, 0.95, 0.75, 0.62),
    Tissue.SKIN: (0.55, 0.58, 0.45, 0.50),
}

#: mean signal per (sequence, tumour label); tuple order T1, T1c, T2, FLAIR.
_LABEL_SIGNAL: dict[Label, tuple[float, float, float, float]] = {
    Label.NETC: (0.38, 0.40, 0.85, 0.58),
    Label.SNFH: (0.58, 0.60, 0.80, 0.95),
    Label.ET: (0.62, 1.30, 0.62, 0.78),
    Label.RC: (0.20, 0.22, 1.05, 0.13),
}

#: how the template's anatomical detail (deep nuclei, cortical ribbon) shows per sequence.
_DETAIL_GAIN: tuple[float, float, float, float] = (1.0, 1.0, -0.8, -0.6)

_CHANNEL: dict[Sequence, int] = {Sequence.T1: 0, Sequence.T1C: 1, Sequence.T2: 2, Sequence.FLAIR: 3}


def tissue_signal(sequence: Sequence, tissue: Tissue | Label) -> float:
    """Nominal signal of a tissue or tumour label on ``sequence`` (before jitter)."""
    table = _LABEL_SIGNAL if isinstance(tissue, Label) else _TISSUE_SIGNAL
    return table[tissue][_CHANNEL[sequence]]  # type: ignore[index]


def render_sequence(
    *,
    head: HeadModel,
    tumour: TumourMaps | None,
    sequence: Sequence,
    rng: np.random.Generator | None = None,
    jitter: float = 0.0,
) -> np.ndarray:
    """Noise-free image of ``sequence`` on the head grid (float32).

    ``jitter`` > 0 multiplies every class mean by ``1 + N(0, jitter)`` (domain randomisation);
    the factor is clipped to [0.6, 1.4].
    """
    image = render_normal(head=head, sequence=sequence, rng=rng, jitter=jitter)
    if tumour is not None:
        add_tumour(image, tumour=tumour, sequence=sequence, rng=rng, jitter=jitter)
    return image


def render_normal(
    *, head: HeadModel, sequence: Sequence, rng: np.random.Generator | None = None,
    jitter: float = 0.0,
) -> np.ndarray:
    """Noise-free image of the normal head (no tumour) on the head grid (float32)."""
    channel = _CHANNEL[sequence]
    image = np.zeros(head.shape, dtype=np.float32)
    for tissue, signal in _TISSUE_SIGNAL.items():
        image += head.fractions[tissue] * np.float32(_jittered(signal[channel], rng, jitter))
    image += head.t1_detail * np.float32(_DETAIL_GAIN[channel])
    if sequence is Sequence.T1C:
        _add_dural_enhancement(image, head, _jittered(0.25, rng, jitter))
    return image


def add_tumour(
    image: np.ndarray, *, tumour: TumourMaps, sequence: Sequence,
    rng: np.random.Generator | None = None, jitter: float = 0.0,
) -> np.ndarray:
    """Blend the tumour sub-regions into ``image`` (in place) by their soft memberships."""
    channel = _CHANNEL[sequence]
    crop = image[tumour.crop]
    total = sum(tumour.memberships.values())
    blended = crop * (1.0 - total)
    for label, membership in tumour.memberships.items():
        blended += membership * np.float32(_jittered(_LABEL_SIGNAL[label][channel], rng, jitter))
    image[tumour.crop] = blended
    return image


def _jittered(value: float, rng: np.random.Generator | None, jitter: float) -> float:
    if rng is None or jitter <= 0:
        return value
    return value * float(np.clip(1.0 + rng.normal(0.0, jitter), 0.6, 1.4))


def _add_dural_enhancement(image: np.ndarray, head: HeadModel, amount: float) -> None:
    """Thin enhancement where the convexity CSF meets the inner table (dura mater)."""
    csf = head.fractions[Tissue.CSF]
    bone = head.fractions[Tissue.BONE]
    image += np.float32(amount) * 4.0 * np.minimum(csf, bone) * (~head.intracranial | (bone > 0))
