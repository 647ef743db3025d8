"""engine.memory: freed memory stays in the process, so a repeated large allocation stops faulting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.memory import _glibc
from engine.settings import load_settings

PROBE = """
import resource, sys, threading
from engine.memory import keep_freed_memory

applied = keep_freed_memory(sys.argv[1] == "on")
assert keep_freed_memory(sys.argv[1] == "on") is applied  # a second call changes nothing


def faults(size):
    # a bytearray (plain malloc, zeroed by writing), not numpy, which asks the kernel for huge pages
    block = bytearray(size)
    del block  # the first use of that much memory faults either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        block = bytearray(size)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


# 64 MB: above glibc's largest mmap threshold (32 MB); 40 MB in a worker thread too, since the
# pipeline's steps run in Prefect's worker threads
main = faults(64 * 2**20)
worker = []
thread = threading.Thread(target=lambda: worker.append(faults(40 * 2**20)))
thread.start()
thread.join()
print(applied, main, worker[0])
"""


def _faults(mode: str) -> tuple[str, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1]), int(out[2])


@pytest.mark.skipif(_glibc() is None, reason="the policy uses glibc's mallopt; this C library has none")
def test_freed_memory_is_reused_instead_of_faulted_in_again() -> None:
    applied_off, main_off, worker_off = _faults("off")
    applied_on, main_on, worker_on = _faults("on")
    assert (applied_off, applied_on) == ("False", "True")
    # without the policy each block comes back as fresh pages: 5 x 16,384 (64 MB) and 5 x 10,240
    # (40 MB) faults of 4 KB
    assert main_off >= 5 * 16_384 * 0.9 and worker_off >= 5 * 10_240 * 0.9
    assert main_on < main_off / 20 and worker_on < worker_off / 20


def test_the_setting_is_off_by_default_and_the_environment_turns_it_on() -> None:
    assert load_settings(environ={}).keep_freed_memory is False
    assert load_settings(environ={"GLIOWATCH_KEEP_FREED_MEMORY": "true"}).keep_freed_memory is True
