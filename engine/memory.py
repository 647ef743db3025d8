"""Keep freed memory in the process for the next study instead of handing it back to the kernel.

A study's segmentation and registration allocate and free many full-volume arrays (the network's
activations are hundreds of MB each). glibc's malloc serves every allocation above its mmap
threshold (at most 32 MB) with a fresh ``mmap`` and unmaps it on ``free``, so each comes back as
pages the kernel must fault in and zero again (~1.5 million page faults per demo study).
:func:`keep_freed_memory` sets, through ``mallopt``: ``M_MMAP_MAX`` = 0 (large allocations come
from the heap, where freed blocks are reused), ``M_TRIM_THRESHOLD`` = -1 (the heap is never
trimmed) and ``M_ARENA_MAX`` = 1 (every thread allocates from that one heap). It must run before
the process starts threads: a thread that already has an arena of its own keeps it.

Measured (2026-12-07, 2-core VM, 1 patient x 4 demo studies through the Prefect flow, one process
per run, on and off alternating): on 61.8, 61.9, 65.4, 68.1 s against off 65.6, 68.2, 68.1, 70.6 s
(two of the "on" runs with a 2 GiB trim threshold instead of none, no different); page faults
1.8-2.2 million against 5.4-5.5 million; system time 13.6-16.5 s against 17.1-19.5 s. Four whole
demos did not show it: their run-to-run spread (431-563 s) is larger; nor did ``bench_latency``
(processing median 15.5 and 14.7 s on, 14.9 s off, one after another) (docs/BENCHMARKS.md).
Applied only after Prefect's threads had started: 4.1-4.5 million faults, no gain. The price is
resident memory: the process keeps about its peak and some fragmentation (maximum resident set
3.5-3.9 GB against 2.9 GB on those 4 studies; a loop of the same 320 MB of tensors settles at
1.3 GB after ~8 rounds and stays there).

Setting ``keep_freed_memory`` (default off, since the gain is not visible end to end;
``GLIOWATCH_KEEP_FREED_MEMORY=true``) switches it on; the
``gliowatch`` command applies it at start, and ``flows.runtime.build_runtime`` in any other process
that runs the steps (Prefect's flow-run subprocesses under ``serve``: there only for the threads
started after it). Processes that GlioWatch does not start (Dask workers)
get the same behaviour from glibc's environment: ``MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=1099511627776`` (docs/DEPLOYMENT.md). Only glibc has these knobs; elsewhere
this does nothing and logs so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
#: glibc: "Setting M_TRIM_THRESHOLD to -1 disables trimming completely" (mallopt(3)).
NEVER = -1

_lock = threading.Lock()
_applied = False


def keep_freed_memory(enabled: bool = True) -> bool:
    """Apply the policy to this process once (later calls do nothing); True when it is in force."""
    global _applied
    if not enabled:
        return _applied
    with _lock:
        if _applied:
            return True
        libc = _glibc()
        if libc is None:
            log.info("keep_freed_memory: not glibc, the allocator's defaults stay")
            return False
        ok = all(libc.mallopt(param, value) == 1 for param, value in (
            (M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER)))
        if not ok:
            log.warning("keep_freed_memory: mallopt refused the settings, the allocator's defaults stay")
            return False
        _applied = True
        return True


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
