"""The decision rule from class probabilities to labels (its calibration: :mod:`engine.modelling.calibration`).

The network's output is a probability per class on the model's working grid (0.8 mm for 0.3.1,
1.0 mm for 0.3.0, 1.5 mm for 0.2.0), resampled onto the reference grid. Labels are the argmax of
``weight_k * p_k``: weights 1 are the plain argmax. A thin enhancing crescent covers a
minority of every working voxel it touches, so its class fraction rarely wins a plain argmax; a
weight above 1 on ET lets it win where it is the most likely tumour class by a margin the
weights set. The weights are a model property
(``decision_weights`` in config.json, by label name) chosen on a *calibration* cohort (its own
seed, neither training nor the held-out evaluation cohort) by
:func:`engine.modelling.calibration.calibrate`.

Only the box around the possible foreground needs the reference grid: a reference voxel whose
eight working-grid neighbours all decode to background decodes to background too, because the
trilinear weights are convex and ``w_0 p_0 >= w_k p_k`` is linear in the probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from engine.types import Label

if TYPE_CHECKING:
    import torch

#: decision weights of labels a config does not name.
DEFAULT_WEIGHT = 1.0
#: tumour labels whose weights :func:`engine.modelling.calibration.calibrate` tunes (RC is left at 1: its Dice is already high).
TUNED_LABELS: tuple[Label, ...] = (Label.NETC, Label.SNFH, Label.ET)
#: a voxel whose background probability is at least this is background for every allowed weight.
CERTAIN_BACKGROUND = 0.95
#: decision weights must lie below this: then ``w * p_k < p_0`` wherever p_0 >= CERTAIN_BACKGROUND.
MAX_WEIGHT = round(CERTAIN_BACKGROUND / (1.0 - CERTAIN_BACKGROUND), 9)  # 19


def channel_weights(output_labels: Mapping[int, Label], weights: Mapping[Label, float] | None) -> np.ndarray:
    """Weight per output channel (channel 0 = background = 1).

    >>> channel_weights({1: Label.NETC, 3: Label.ET}, {Label.ET: 2.0}).tolist()
    [1.0, 1.0, 1.0, 2.0]
    """
    out = np.ones(max(output_labels) + 1, dtype=np.float32)
    for channel, label in output_labels.items():
        out[channel] = float((weights or {}).get(label, DEFAULT_WEIGHT))
    return out


def label_lut(output_labels: Mapping[int, Label], n_channels: int) -> np.ndarray:
    lut = np.zeros(n_channels, dtype=np.uint8)
    for channel, label in output_labels.items():
        if channel < n_channels:
            lut[channel] = int(label)
    return lut


def decide(probabilities: np.ndarray, *, weights: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Labels (uint8) from (K, ...) probabilities: argmax of ``weights * p``, channel -> label.

    Where every probability is zero (outside the working grid) background wins, as its
    probability is taken as ``max(p_0, 1 - sum p)``.

    >>> p = np.array([[0.6, 0.0], [0.0, 0.0], [0.4, 0.0]])[:, :, None]
    >>> decide(p, weights=np.ones(3), lut=np.array([0, 1, 3], np.uint8)).ravel().tolist()
    [0, 0]
    >>> decide(p, weights=np.array([1.0, 1.0, 2.0]), lut=np.array([0, 1, 3], np.uint8)).ravel().tolist()
    [3, 0]
    """
    import torch

    k = probabilities.shape[0]
    array = np.asarray(probabilities)
    if array.dtype != np.float32 or not array.flags.writeable or min(array.strides) < 0:
        array = np.array(array, dtype=np.float32)  # a copy (calibration keeps float16; torch needs these)
    values = torch.from_numpy(array)  # torch uses every core
    weights = np.concatenate([np.asarray(weights, np.float32)[:k], np.ones(max(0, k - len(weights)), np.float32)])
    factors = [torch.tensor(w) for w in weights] if np.any(weights != 1.0) else None
    # one channel at a time, the input untouched: no scored copy of all K channels
    best = torch.maximum(values[0], 1.0 - values.sum(0))
    if factors is not None:
        best.mul_(factors[0])
    index = torch.zeros(values.shape[1:], dtype=torch.uint8)
    for channel in range(1, k):
        score = values[channel] * factors[channel] if factors is not None else values[channel]
        index.masked_fill_(score > best, channel)  # strictly greater: the first maximum wins
        torch.maximum(best, score, out=best)
    return lut[index.numpy()]
