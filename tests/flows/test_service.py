"""The service loop announces the writer while it holds the store, and stops when told to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import flows.runtime
from engine.errors import StoreError
from engine.settings import Settings
from engine.store.writer_presence import read_presence
from flows import service


class _Runtime:
    closed = False

    def close(self) -> None:
        self.closed = True


class _Report:
    def summary(self) -> str:
        return "cycle"


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> _Runtime:
    rt = _Runtime()
    monkeypatch.setattr(flows.runtime, "build_runtime", lambda settings: rt)
    return rt


def test_the_loop_says_a_writer_runs_until_it_stops(tmp_path: Path, runtime: _Runtime,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(state_dir=tmp_path)
    seen = []

    def cycle(rt: _Runtime, *, reconcile: bool) -> _Report:
        seen.append(read_presence(tmp_path))
        return _Report()

    monkeypatch.setattr(service, "run_one_cycle", cycle)
    monkeypatch.setattr(service.time, "sleep", lambda s: None)
    code = service.run_loop(settings, service.LoopOptions(stop_when=lambda: len(seen) >= 3))
    assert code == 0 and len(seen) == 3
    assert all(p is not None and p.pid == os.getpid() for p in seen)
    assert seen[0].last_cycle_at is None and seen[2].last_cycle_at is not None  # rewritten after each cycle
    assert read_presence(tmp_path) is None and runtime.closed


def test_a_loop_that_fails_withdraws_too(tmp_path: Path, runtime: _Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    def cycle(rt: _Runtime, *, reconcile: bool) -> _Report:
        raise StoreError("The store is damaged")

    monkeypatch.setattr(service, "run_one_cycle", cycle)
    with pytest.raises(StoreError, match="damaged"):
        service.run_loop(Settings(state_dir=tmp_path), service.LoopOptions())
    assert read_presence(tmp_path) is None and runtime.closed
