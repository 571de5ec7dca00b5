"""The lifecycle decisions of a generation, driven as h11 tests its connection:
events in with the time they happened, decisions out; no loop, no sleeps."""

from __future__ import annotations

import math

import pytest

from app.core.lifecycle import (
    CREDIT_WINDOW,
    PRESENCE_RECHECK_S,
    CheckElsewhere,
    IllegalTransition,
    Lifecycle,
    Phase,
    Resume,
    Stop,
    StopReason,
    Timeouts,
)

TIMEOUTS = Timeouts(first_token_s=5.0, idle_s=2.0, detach_grace_s=10.0, attach_s=30.0)


def started(timeouts: Timeouts = TIMEOUTS, shared: bool = False, now: float = 0.0) -> Lifecycle:
    life = Lifecycle(timeouts, shared=shared)
    assert life.start(now) is None
    return life


def attached(now: float = 0.0, shared: bool = False) -> Lifecycle:
    life = started(shared=shared, now=now)
    life.attach(0)
    return life


def fill(life: Lifecycle, count: int, now: float = 0.0) -> list[bool]:
    return [life.appended(life.last_seq + 1, now) for _ in range(count)]


# ---- credit -------------------------------------------------------------


def test_an_attached_reader_lets_the_producer_run_one_window_ahead_then_holds_it() -> None:
    life = attached()
    waits = fill(life, CREDIT_WINDOW)
    assert waits == [False] * (CREDIT_WINDOW - 1) + [True]


def test_a_completed_send_releases_the_credit_once_the_producer_is_back_inside_the_window() -> None:
    life = attached()
    fill(life, CREDIT_WINDOW)
    assert life.delivered_up_to(0) is None  # nothing new delivered
    assert life.delivered_up_to(1) is Resume.CREDIT
    assert life.delivered_up_to(2) is None  # released once, not per send


def test_with_no_reader_the_producer_runs_free() -> None:
    life = started()
    assert not any(fill(life, CREDIT_WINDOW * 10))


def test_a_reader_resuming_far_ahead_counts_as_delivered_up_to_its_point() -> None:
    life = started()
    fill(life, CREDIT_WINDOW * 3)
    life.attach(CREDIT_WINDOW * 3)
    assert life.appended(life.last_seq + 1, 0.0) is False


def test_the_fastest_reader_sets_the_pace() -> None:
    life = attached()
    life.attach(0)
    fill(life, CREDIT_WINDOW)
    assert life.delivered_up_to(CREDIT_WINDOW) is Resume.CREDIT
    assert life.delivered_up_to(3) is None  # a slower reader does not move it back
    assert life.delivered == CREDIT_WINDOW


# ---- timeouts -----------------------------------------------------------


def test_no_first_event_within_its_timeout_stops_with_first_token_timeout() -> None:
    life = attached(now=100.0)
    assert life.next_deadline() == 105.0
    assert life.tick(104.9) is None
    assert life.tick(105.0) == Stop(StopReason.FIRST_TOKEN_TIMEOUT)
    assert life.phase is Phase.STOPPING


def test_each_event_pushes_the_idle_timeout_forward() -> None:
    life = attached(now=0.0)
    life.appended(1, 4.0)
    assert life.next_deadline() == 6.0
    assert life.tick(5.9) is None
    life.appended(2, 5.9)
    assert life.tick(6.0) is None
    assert life.tick(7.9) == Stop(StopReason.IDLE_TIMEOUT)


def test_waiting_for_a_slow_reader_is_not_an_upstream_timeout() -> None:
    life = attached()
    fill(life, CREDIT_WINDOW, now=1.0)
    assert life.next_deadline() == math.inf
    assert life.tick(1_000.0) is None
    life.delivered_up_to(CREDIT_WINDOW)
    life.resumed(1_000.0)
    assert life.next_deadline() == 1_002.0


# ---- readers and the grace ----------------------------------------------


def test_a_stream_nobody_opens_is_abandoned_after_the_attach_timeout() -> None:
    life = started(now=0.0)
    life.appended(1, 0.0)
    for t in range(1, 30):
        life.appended(life.last_seq + 1, float(t))
        assert life.tick(float(t)) is None
    assert life.tick(30.0) == Stop(StopReason.ABANDONED)


def test_a_reader_attaching_before_the_start_gets_no_attach_timeout() -> None:
    life = Lifecycle(TIMEOUTS)
    life.attach(0)
    assert life.start(0.0) is None
    assert life.next_deadline() == TIMEOUTS.first_token_s


def test_the_last_reader_leaving_lets_the_producer_run_free_for_the_grace() -> None:
    life = attached()
    fill(life, CREDIT_WINDOW)
    assert life.detach(1.0) is Resume.CREDIT
    life.resumed(1.0)
    life.appended(life.last_seq + 1, 10.9)
    assert life.tick(10.9) is None
    life.appended(life.last_seq + 1, 11.0)
    assert life.tick(11.0) == Stop(StopReason.ABANDONED)


def test_a_reconnect_within_the_grace_keeps_the_stream() -> None:
    life = attached()
    life.detach(1.0)
    life.attach(0)
    life.appended(1, 11.0)
    assert life.tick(11.0) is None
    assert life.phase is Phase.RUNNING


def test_with_a_grace_of_zero_the_stream_stops_at_once_and_the_credit_stays_held() -> None:
    life = Lifecycle(Timeouts(5.0, 2.0, detach_grace_s=0.0, attach_s=1.0))
    life.start(0.0)
    life.attach(0)
    fill(life, CREDIT_WINDOW)
    assert life.detach(0.5) == Stop(StopReason.ABANDONED)


def test_one_of_two_readers_leaving_changes_nothing() -> None:
    life = attached()
    life.attach(0)
    assert life.detach(1.0) is None
    assert life.next_deadline() == TIMEOUTS.first_token_s


# ---- readers elsewhere ----------------------------------------------------


def test_with_a_shared_store_an_expired_grace_asks_other_processes_first() -> None:
    life = attached(shared=True)
    life.detach(0.0)
    life.appended(1, 9.0)
    assert life.tick(10.0) is CheckElsewhere.CHECK
    assert life.tick(10.5) is None  # one check at a time
    assert life.elsewhere(False, 10.5) == Stop(StopReason.ABANDONED)


def test_readers_elsewhere_buy_another_grace() -> None:
    life = attached(shared=True)
    life.detach(0.0)
    life.appended(1, 9.5)
    assert life.tick(10.0) is CheckElsewhere.CHECK
    assert life.elsewhere(True, 10.0) is None
    again = 10.0 + max(TIMEOUTS.detach_grace_s, PRESENCE_RECHECK_S)
    life.appended(2, again - 0.1)
    assert life.tick(again - 0.1) is None
    assert life.tick(again) is CheckElsewhere.CHECK


def test_an_answer_that_comes_after_a_reader_came_back_decides_nothing() -> None:
    life = attached(shared=True)
    life.detach(0.0)
    life.appended(1, 9.5)
    life.tick(10.0)
    life.attach(1)
    assert life.elsewhere(False, 10.1) is None
    assert life.phase is Phase.RUNNING


# ---- hold, stop, end ------------------------------------------------------


def test_a_held_stream_runs_free_and_is_never_abandoned() -> None:
    life = attached()
    fill(life, CREDIT_WINDOW)
    assert life.hold() is Resume.CREDIT
    assert not any(fill(life, CREDIT_WINDOW * 2, now=1.0))
    assert life.detach(1.0) is None
    life.appended(life.last_seq + 1, 100.0)
    assert life.tick(100.0) is None


def test_the_first_stop_wins_and_later_ones_are_refused() -> None:
    life = attached()
    assert life.stop() is True
    assert life.stop_reason is StopReason.REQUESTED
    assert life.stop() is False
    assert life.tick(1_000.0) is None
    assert life.stop_reason is StopReason.REQUESTED


def test_a_timeout_after_a_stop_decides_nothing() -> None:
    life = attached()
    life.stop()
    assert life.next_deadline() == math.inf
    assert life.detach(1.0) is None


def test_an_ended_stream_has_no_deadline_and_ends_once() -> None:
    life = attached()
    life.appended(1, 0.0)
    life.ended()
    assert life.phase is Phase.ENDED
    assert life.next_deadline() == math.inf
    assert life.stop() is False
    with pytest.raises(IllegalTransition):
        life.ended()
