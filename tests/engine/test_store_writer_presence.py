"""The writer's presence file: how a reader knows, without the store, whether a writer runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from engine.store.writer_presence import (
    MIN_STALE_S,
    WriterPresence,
    WriterState,
    announce_writer,
    presence_path,
    read_presence,
    record_cycle,
    withdraw_writer,
    writer_state,
)

T0 = datetime(2025, 6, 1, 12, 0)


def test_the_writer_announces_itself_each_cycle_and_withdraws(tmp_path: Path) -> None:
    presence = announce_writer(tmp_path, poll_interval_s=5, now=T0)
    assert read_presence(tmp_path) == presence and presence.last_cycle_at is None
    presence = record_cycle(tmp_path, presence, now=T0 + timedelta(seconds=7))
    assert read_presence(tmp_path).last_cycle_at == T0 + timedelta(seconds=7)
    assert writer_state(read_presence(tmp_path), now=T0) == WriterState.RUNNING  # this process
    withdraw_writer(tmp_path, presence)
    assert read_presence(tmp_path) is None
    assert writer_state(None, now=T0) == WriterState.NEVER
    assert [p.name for p in tmp_path.iterdir()] == [], "no temporary file left behind"


def test_on_this_host_a_dead_process_id_means_stopped(tmp_path: Path) -> None:
    presence = announce_writer(tmp_path, poll_interval_s=5, now=T0)
    assert writer_state(presence, now=T0, is_alive=lambda pid: False) == WriterState.STOPPED


def test_on_another_host_the_age_of_the_last_cycle_decides(tmp_path: Path) -> None:
    elsewhere = WriterPresence(pid=1, host="another-host.invalid", started_at=T0, poll_interval_s=5,
                               last_cycle_at=T0)
    fresh = T0 + timedelta(seconds=MIN_STALE_S - 1)
    assert writer_state(elsewhere, now=fresh, is_alive=lambda pid: False) == WriterState.RUNNING
    assert writer_state(elsewhere, now=T0 + timedelta(seconds=MIN_STALE_S + 1)) == WriterState.STOPPED


def test_a_writer_leaves_a_later_writers_file_alone_and_a_damaged_file_vouches_for_none(tmp_path: Path) -> None:
    mine = announce_writer(tmp_path, poll_interval_s=5, now=T0)
    later = WriterPresence(pid=mine.pid + 1, host=mine.host, started_at=T0, poll_interval_s=5)
    presence_path(tmp_path).write_text(later.to_json())
    withdraw_writer(tmp_path, mine)
    assert read_presence(tmp_path) == later
    presence_path(tmp_path).write_text('{"pid": ')
    assert read_presence(tmp_path) is None
