"""The station clock on injected board clocks: board steps, synchronisation, exact correction of earlier stamps."""

from __future__ import annotations

import pytest

from agent.runtime.clock import STEP_S, UNSYNCED, Clock, ClockCorrection, format_iso

TRUE_START = 1_780_000_000.0  # the true time when the board boots
THREE_DAYS = 3 * 24 * 3600.0


class Board:
    """A board's two clocks: the wall clock can be stepped, the monotonic clock only runs."""

    def __init__(self, *, wall_error_s: float = 0.0) -> None:
        self.mono = 100.0
        self.error_s = wall_error_s

    def wall(self) -> float:
        return TRUE_START + (self.mono - 100.0) + self.error_s

    def true_time(self) -> float:
        return TRUE_START + (self.mono - 100.0)

    def run(self, seconds: float) -> None:
        self.mono += seconds


def clock_on(board: Board, *, boot_id: str = "boot-A") -> Clock:
    return Clock(wall=board.wall, monotonic=lambda: board.mono, boot_id=boot_id)


def csms_time(board: Board) -> str:
    """What a CSMS with the true time answers now."""
    return format_iso(board.true_time())


def test_clock_before_sync_follows_the_board_clock_and_its_steps():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    assert not clock.synced
    assert clock.time() == pytest.approx(board.wall())
    board.run(10)
    board.error_s = 0.0  # NTP steps the board clock before the CSMS could be reached
    assert clock.time() == pytest.approx(board.true_time())


def test_clock_after_sync_ignores_a_step_of_the_board_clock():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    delta = clock.sync(csms_time(board))
    assert delta == pytest.approx(THREE_DAYS, abs=0.01)
    board.run(120)
    board.error_s = 0.0  # NTP steps the board clock 3 days forward
    assert clock.time() == pytest.approx(board.true_time(), abs=0.01)  # not 72 h ahead
    board.run(5)
    board.error_s = -THREE_DAYS  # and a user's `date -s` sets it back
    assert clock.time() == pytest.approx(board.true_time(), abs=0.01)


def test_clock_each_sync_refreshes_the_reference_and_measures_against_station_time():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    clock.sync(csms_time(board))
    board.run(300)
    board.error_s = 0.0
    assert clock.sync(csms_time(board)) == pytest.approx(0.0, abs=0.01)  # the board step is no clock error
    board.run(300)
    # The CSMS's time moved by 30 s (its own correction): the station follows.
    assert clock.sync(format_iso(board.true_time() + 30)) == pytest.approx(30.0, abs=0.01)
    assert clock.time() == pytest.approx(board.true_time() + 30, abs=0.01)


def test_clock_sync_ignores_an_unparseable_time():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    assert clock.sync("yesterday") == 0.0
    assert not clock.synced
    assert clock.time() == pytest.approx(board.wall())


def test_clock_sync_without_offset_is_utc():
    board = Board()
    clock = clock_on(board)
    assert clock.sync(format_iso(board.true_time() + 3600).rstrip("Z")) == pytest.approx(3600, abs=0.01)


def test_clock_marks_only_stamps_made_before_the_first_sync():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    stamp = clock.time()
    assert clock.unsynced_mark(stamp) == {"boot": "boot-A", "mono": pytest.approx(100.0)}
    clock.sync(csms_time(board))
    assert clock.unsynced_mark(clock.time()) is None


def test_clock_correction_is_exact_across_board_steps_before_the_sync():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    events = []  # (stamp, mark, true time) of things recorded offline
    for seconds, error in ((0, -THREE_DAYS), (60, -THREE_DAYS), (30, 0.0), (45, 0.0), (10, -7200.0)):
        board.run(seconds)
        board.error_s = error  # NTP steps, then someone sets it 2 h back: all before the first sync
        stamp = clock.time()
        events.append((stamp, clock.unsynced_mark(stamp), board.true_time()))
    board.run(400)
    corrections = []
    clock.add_listener(corrections.append)
    clock.sync(csms_time(board))
    (correction,) = corrections
    for stamp, mark, true_time in events:
        assert correction.corrected(stamp, mark) == pytest.approx(true_time, abs=0.002)


def test_clock_correction_rewrites_marked_records_in_place_and_keeps_other_boots_stamps():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    started = clock.time()
    board.run(30)
    sampled = clock.time()
    record = {"timestamp": started, UNSYNCED: clock.unsynced_mark(started), "values": [1, 2],
              "sample": {"timestamp": sampled, UNSYNCED: clock.unsynced_mark(sampled)},
              "transaction_data": [{"timestamp": 5.0, UNSYNCED: {"boot": "boot-OLD", "mono": 1.0}},
                                   {"timestamp": 7.0}]}
    corrections = []
    clock.add_listener(corrections.append)
    board.run(30)
    clock.sync(csms_time(board))
    assert corrections[0].rewrite(record)
    assert record["timestamp"] == pytest.approx(TRUE_START, abs=0.002)
    assert record["sample"]["timestamp"] == pytest.approx(TRUE_START + 30, abs=0.002)
    # Another boot's monotonic clock says nothing about this one: its stamp stays, its mark goes.
    assert record["transaction_data"] == [{"timestamp": 5.0}, {"timestamp": 7.0}]
    assert UNSYNCED not in record and UNSYNCED not in record["sample"]
    assert not corrections[0].rewrite(record)  # nothing left to correct


def test_clock_correction_of_an_earlier_process_in_the_same_boot():
    board = Board(wall_error_s=-THREE_DAYS)
    first = clock_on(board)
    stamp = first.time()
    mark = first.unsynced_mark(stamp)
    board.run(50)  # the agent restarts, still offline, in the same boot
    second = clock_on(board)
    corrections = []
    second.add_listener(corrections.append)
    board.run(50)
    second.sync(csms_time(board))
    assert corrections[0].corrected(stamp, mark) == pytest.approx(TRUE_START, abs=0.002)


def test_clock_listeners_called_at_the_first_sync_only_unless_they_failed():
    board = Board(wall_error_s=-THREE_DAYS)
    clock = clock_on(board)
    calls = []

    def failing_once(correction: ClockCorrection) -> None:
        calls.append(correction.error_s)
        if len(calls) == 1:
            raise OSError("database or disk is full")

    clock.add_listener(failing_once)
    assert clock.sync(csms_time(board)) == pytest.approx(THREE_DAYS, abs=0.01)  # the failure is not raised
    board.run(300)
    clock.sync(csms_time(board))
    board.run(300)
    clock.sync(csms_time(board))
    assert calls == [pytest.approx(THREE_DAYS, abs=0.01), pytest.approx(0.0, abs=0.01)]


def test_clock_small_board_drift_is_not_a_step():
    board = Board()
    clock = clock_on(board)
    first = clock.time()
    board.run(10)
    board.error_s = STEP_S / 2  # slewed, not stepped: the station clock keeps running on the monotonic clock
    assert clock.time() == pytest.approx(first + 10)


def test_clock_offset_s_sets_the_station_time_relative_to_the_board():
    board = Board()
    clock = clock_on(board)
    clock.offset_s = 500.0
    assert clock.time() == pytest.approx(board.wall() + 500.0)
    clock.offset_s -= 3600
    assert clock.offset_s == pytest.approx(-3100.0)
    board.error_s = 60.0
    assert clock.time() == pytest.approx(board.true_time() - 3100.0)


def test_clock_now_iso_is_utc_with_milliseconds():
    board = Board()
    clock = clock_on(board)
    clock.sync("2026-05-01T12:00:00.250Z")
    board.run(1.5)
    assert clock.now_iso() == "2026-05-01T12:00:01.750Z"
    assert clock.now().isoformat() == "2026-05-01T12:00:01.750000+00:00"
