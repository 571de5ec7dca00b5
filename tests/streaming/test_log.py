"""The packed event log: what readers get back, and how idle waits end."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.events import Done, Event, ToolCall, Usage
from app.streaming.log import RECENT, SEGMENT, EventLog
from tests.support.typed import shape, typed_events


def filled(texts: list[str]) -> EventLog:
    log = EventLog()
    for text in texts:
        log.token(text)
    return log


def test_every_suffix_of_a_long_log_reads_back_in_order() -> None:
    texts = [f"t{i}é" if i % 7 else "" for i in range(3 * SEGMENT + 5)]
    texts = [t or "x" for t in texts]
    log = filled(texts)
    for after in (0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT + 3, len(texts) - 1):
        events = log.after(after)
        assert [e.seq for e in events] == list(range(after + 1, len(texts) + 1))
        assert [e.text for e in events] == texts[after:]
        assert all(e.kind == "token" for e in events)


def test_the_terminal_event_follows_the_tokens_and_ends_the_log() -> None:
    log = filled(["a", "b"])
    done = Done("stop", Usage(1, 2), None, None)
    log.append(Event(3, "done", done=done))
    assert log.ended
    assert log.last_seq == 3
    assert [(e.seq, e.kind, e.text) for e in log.events] == [
        (1, "token", "a"),
        (2, "token", "b"),
        (3, "done", ""),
    ]
    assert log.after(3) == []


def test_readers_keeping_up_share_one_object_per_event() -> None:
    log = filled(["x"] * (4 * RECENT))
    first = log.after(log.last_seq - 3)
    second = log.after(log.last_seq - 3)
    assert [id(e) for e in first] == [id(e) for e in second]


def test_delivered_events_are_kept_packed_only_and_still_replay_exactly() -> None:
    texts = [f"w{i}" for i in range(RECENT)]
    log = filled(texts)
    undelivered = log.after(RECENT - 2)
    log.delivered(RECENT - 2)
    assert [id(e) for e in log.after(RECENT - 2)] == [id(e) for e in undelivered]
    assert log.after(0)[0] is not log.after(0)[0]  # delivered: rebuilt on each replay
    assert [e.text for e in log.after(0)] == texts
    log.delivered(RECENT)
    log.token("next")
    assert [e.text for e in log.after(RECENT - 1)] == [texts[-1], "next"]


def test_a_rebuilt_replay_equals_the_original_texts_across_the_open_segment() -> None:
    texts = [str(i) for i in range(SEGMENT + RECENT * 3)]
    log = filled(texts)
    assert [e.text for e in log.after(SEGMENT - 2)] == texts[SEGMENT - 2 :]


async def test_a_wait_ends_true_on_append_and_false_when_idle() -> None:
    log = EventLog()
    waiting = asyncio.ensure_future(log.wait(30))
    await asyncio.sleep(0)
    log.token("a")
    assert await waiting is True
    assert await log.wait(0.01) is False


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    log = EventLog()
    gone = asyncio.ensure_future(log.wait(30))
    stays = asyncio.ensure_future(log.wait(30))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    log.token("a")
    assert await stays is True
    assert gone.cancelled()


async def test_idle_waiters_wake_at_their_own_deadlines() -> None:
    log = EventLog()
    late = asyncio.ensure_future(log.wait(30))
    assert await log.wait(0.01) is False
    assert not late.done()
    log.token("a")
    assert await late is True


@settings(max_examples=60)
@given(events=typed_events(), texts_first=st.integers(0, 3 * SEGMENT))
def test_typed_events_read_back_exactly_from_any_point(
    events: list[Event], texts_first: int
) -> None:
    log = filled([f"w{i}" for i in range(texts_first)])
    expected = [Event(i + 1, "token", f"w{i}") for i in range(texts_first)]
    for event in events:
        seq = log.last_seq + 1
        kept = log.delta(event.kind, event.text, event.index, event.call)  # type: ignore[arg-type]
        expected.append(Event(seq, event.kind, event.text, index=event.index, call=event.call))
        assert kept.seq == seq
    log.token("tail")
    expected.append(Event(log.last_seq, "token", "tail"))
    log.delivered(log.last_seq)  # nothing kept as objects: every read is rebuilt
    for after in {0, 1, texts_first, texts_first + 1, len(expected) // 2, len(expected) - 1}:
        assert shape(log.after(after)) == shape(expected[after:])


def test_a_text_only_log_keeps_no_runs() -> None:
    log = filled(["a"] * (2 * SEGMENT))
    assert log._run_starts is None
    assert log._run_info is None


def test_a_run_of_argument_fragments_costs_one_run() -> None:
    log = EventLog()
    log.delta("tool_call", "", 0, ToolCall(0, "call_1", "f"))
    for i in range(50):
        log.delta("tool_call_delta", f"p{i}", 0, None)
    log.token("done thinking")
    assert list(log._run_starts or ()) == [1, 2, 52]
