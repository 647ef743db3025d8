"""How many segmentations a worker runs at once and on how many torch threads each: a lone CPU
study on every core, a CPU batch side by side with the cores shared out, a GPU as configured."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from engine.segmentation import segmentation_on_gpu
from engine.settings import SegmentationSettings, Settings
from engine.torch_threads import torch_threads
from flows.process import segmentation_slots


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)


def _settings(device: str, *, workers: int = 2, gpu_slots: int = 1) -> Settings:
    return dataclasses.replace(Settings(), workers=workers, gpu_slots=gpu_slots,
                               segmentation=SegmentationSettings(device=device))


def test_a_lone_cpu_study_keeps_every_core_and_a_batch_shares_them(two_cores: None) -> None:
    cpu = _settings("cpu")
    assert segmentation_slots(cpu, 1) == (1, 0)
    assert segmentation_slots(cpu, 4) == (2, 1)
    assert segmentation_slots(_settings("cpu", workers=1), 4) == (1, 0)
    assert segmentation_slots(_settings("cpu", workers=4), 3) == (3, 1)  # never fewer than one thread


def test_the_segmenter_is_on_the_gpu_when_cuda_is_asked_for_or_auto_finds_it() -> None:
    def on_gpu(device: str, cuda: bool) -> bool:
        return segmentation_on_gpu(SegmentationSettings(device=device), cuda_available=cuda)

    assert on_gpu("auto", True) and not on_gpu("auto", False)
    assert on_gpu("cuda", False) and on_gpu(" CUDA:1 ", True)  # asked for: select_device refuses it if absent
    assert not on_gpu("cpu", True)


def test_a_gpu_runs_its_configured_slots_with_torch_untouched(two_cores: None) -> None:
    assert segmentation_slots(_settings("cuda", gpu_slots=3), 6) == (3, 0)


def test_side_by_side_tasks_each_run_on_their_share() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []
    inside = threading.Barrier(2)

    def task() -> None:
        with torch_threads(1):
            inside.wait()
            seen.append(torch.get_num_threads())
            inside.wait()

    try:
        torch.set_num_threads(2)
        workers = [threading.Thread(target=task) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert seen == [1, 1]  # each task thread on its share, not the process's 2
    finally:
        torch.set_num_threads(before)
