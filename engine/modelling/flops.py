"""Floating-point operations of one network pass, counted without running it.

The network is copied onto PyTorch's ``meta`` device (shapes only, no data) and run there under
``torch.utils.flop_counter.FlopCounterMode``, which counts the convolutions (2 FLOPs per
multiply-add, transposed convolutions included). Normalisation, activations and additions are
not counted: they are memory-bound and small beside the convolutions. The count is the floor of
the work, so ``count / peak FLOP/s`` is the shortest time any device can take.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


#: usable dense bf16 throughput the issue names for an H100 (TFLOP/s): the default FLOP floor of
#: the benchmarks (``benchmarks/bench_segmentation.py``, ``benchmarks/bench_gpu_network.py``).
H100_BF16_TFLOPS = 400.0


class FlopCounter:
    """FLOPs of ``net`` per input shape (cached)."""

    def __init__(self, net: torch.nn.Module) -> None:
        self._meta = copy.deepcopy(net).to("meta").eval()
        self._cache: dict[tuple[int, ...], int] = {}

    def count(self, shape: tuple[int, ...]) -> int:
        """FLOPs of one pass over an input of ``shape`` (N, C, X, Y, Z)."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        shape = tuple(int(s) for s in shape)
        if shape not in self._cache:
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                self._meta(torch.empty(shape, device="meta"))
            self._cache[shape] = int(counter.get_total_flops())
        return self._cache[shape]


__all__ = ["H100_BF16_TFLOPS", "FlopCounter"]
