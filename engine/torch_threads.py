"""torch's intra-op thread count, narrowed while CPU work runs side by side in one process.

Registrations (one thread each) and, in a batch of several studies, segmentations run side by side
in a worker's threads. With every task on all cores, two tasks on a 2-core machine fight over the
cores (OpenMP threads spin and wait for each other): a batch of 4 demo studies took 38.2 s
segmented one after another on 2 threads each, 30.0 s two at a time on 1 thread each, with one
core busy with other work (2026-12-07; 20.8 s and 19.3 s with nothing else running). torch
keeps the count per thread (a thread takes the process value on its first parallel operation), so
every task sets it in its own thread; the process value is restored when the last one ends, so a
plain save/restore per task cannot restore another's setting while it still runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()
_users = 0
_saved = 0


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` in this thread (and as the process value for threads
    that start now) while at least one caller is inside; the value from before the first caller is
    restored when the last one leaves. ``n`` 0: unchanged."""
    global _users, _saved  # noqa: PLW0603 - the process-wide torch setting it mirrors
    if n <= 0:
        yield
        return
    import torch

    with _LOCK:
        if _users == 0:
            _saved = torch.get_num_threads()
        _users += 1
        torch.set_num_threads(n)
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_saved)
