"""Splitting array work over threads (scipy and numpy release the GIL): used by the preprocessing
and the sequence alignment of segmentation."""

from __future__ import annotations

import itertools
import os

import numpy as np


def workers_for(workers: int | None) -> int:
    """``workers``, or one per core when ``None`` (at least 1)."""
    return max(1, int(workers if workers is not None else (os.cpu_count() or 1)))


def slabs(length: int, parts: int) -> list[slice]:
    """``parts`` (at most ``length``) contiguous slices covering ``range(length)``.

    >>> slabs(10, 3)
    [slice(0, 3, None), slice(3, 7, None), slice(7, 10, None)]
    """
    edges = np.linspace(0, length, min(parts, max(length, 1)) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def in_threads(function, items: list, workers: int, *, name: str = "") -> list:  # noqa: ANN001
    """``[function(item) for item in items]`` in up to ``workers`` threads (in order; serial for one).

    >>> in_threads(abs, [-1, 2, -3], 2)
    [1, 2, 3]
    """
    if workers <= 1 or len(items) <= 1:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(function, items))
