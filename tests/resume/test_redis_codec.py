"""The Redis entry format rebuilds every event of a batch exactly (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.events import Done, Event, Failure, UpstreamStop, Usage
from app.resume.redis_codec import (
    StreamKeys,
    decode_entry,
    encode_batch,
    entry_id,
    last_of,
    seq_of,
)
from tests.support.typed import shape, typed_events

texts = st.lists(st.text(), min_size=1, max_size=20)


def tokens(first: int, batch: list[str]) -> list[Event]:
    return [Event(first + i, "token", text=text) for i, text in enumerate(batch)]


def summary(events: list[Event]) -> list[tuple[int, str, str, Done | None, Failure | None]]:
    return [(e.seq, e.kind, e.text, e.done, e.failure) for e in events]


def round_trip(events: list[Event], after: int = 0) -> list[Event]:
    entry, fields = encode_batch(events)
    return decode_entry(entry.encode(), fields, after)


@given(first=st.integers(1, 10**9), batch=texts)
def test_a_batch_of_tokens_round_trips_with_its_first_seq_as_the_entry_id(
    first: int, batch: list[str]
) -> None:
    events = tokens(first, batch)
    entry, _ = encode_batch(events)
    assert seq_of(entry) == first
    assert summary(round_trip(events)) == summary(events)


def test_non_ascii_newlines_and_empty_texts_survive_a_round_trip() -> None:
    events = tokens(1, ["héllo", " wörld\n", "", "\r\n\n", "日本語", '"quoted"\\', "\x00"])
    assert summary(round_trip(events)) == summary(events)


@given(
    batch=st.lists(st.text(), max_size=5),
    usage=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    ttft=st.none() | st.floats(0, 1e6),
    tps=st.none() | st.floats(0, 1e6),
    stop=st.none() | st.builds(UpstreamStop, st.text(), st.none() | st.text()),
)
def test_a_batch_ending_with_done_round_trips(
    batch: list[str],
    usage: tuple[int, int],
    ttft: float | None,
    tps: float | None,
    stop: UpstreamStop | None,
) -> None:
    done = Done("length", Usage(*usage), ttft, tps, stop)
    events = [*tokens(7, batch), Event(7 + len(batch), "done", done=done)]
    decoded = round_trip(events)
    assert summary(decoded) == summary(events)
    assert decoded[-1].terminal


@given(
    batch=st.lists(st.text(), max_size=5),
    message=st.text(),
    retryable=st.booleans(),
    code=st.none() | st.text(),
)
def test_a_batch_ending_with_an_error_round_trips(
    batch: list[str], message: str, retryable: bool, code: str | None
) -> None:
    failure = Failure("upstream_error", message, retryable, code)
    events = [*tokens(3, batch), Event(3 + len(batch), "error", failure=failure)]
    assert summary(round_trip(events)) == summary(events)


@given(batch=texts, data=st.data())
def test_decoding_after_a_seq_drops_the_events_up_to_it(
    batch: list[str], data: st.DataObject
) -> None:
    events = tokens(10, batch)
    after = data.draw(st.integers(0, 10 + len(batch)))
    assert summary(round_trip(events, after)) == summary([e for e in events if e.seq > after])


def test_the_last_seq_and_whether_the_entry_ends_the_stream_come_from_one_entry() -> None:
    entry, fields = encode_batch(tokens(4, ["a", "b", "c"]))
    assert last_of(entry, fields) == (6, False)
    failure = Failure("upstream_error", "gone", True)
    entry, fields = encode_batch([Event(7, "error", failure=failure)])
    assert last_of(entry.encode(), fields) == (7, True)


def test_a_batch_with_a_gap_in_its_seqs_is_refused() -> None:
    with pytest.raises(ValueError, match="consecutive"):
        encode_batch([Event(1, "token", text="a"), Event(3, "token", text="b")])


def test_every_key_of_a_stream_shares_its_hash_tag() -> None:
    keys = StreamKeys.of("abc")
    assert keys.all == (
        "sluice:{abc}:log",
        "sluice:{abc}:meta",
        "sluice:{abc}:lease",
        "sluice:{abc}:readers",
    )
    assert seq_of(b"0-42") == 42
    assert entry_id(42) == "0-42"


@given(first=st.integers(1, 10**9), events=st.data())
def test_a_batch_of_typed_events_round_trips_from_any_point(
    first: int, events: st.DataObject
) -> None:
    batch = events.draw(typed_events(first))
    batch.append(
        Event(first + len(batch), "done", done=Done("tool_calls", Usage(5, 7, 2, 3), 1.5, None))
    )
    for after in (0, first, first + len(batch) // 2):
        assert shape(round_trip(batch, after)) == shape(batch[max(0, after - first + 1) :])
    entry, fields = encode_batch(batch)
    assert last_of(entry.encode(), fields) == (batch[-1].seq, True)


def test_a_batch_ending_in_a_typed_delta_does_not_end_the_stream() -> None:
    batch = [Event(4, "tool_call_delta", "{", index=0), Event(5, "reasoning", "hm")]
    entry, fields = encode_batch(batch)
    assert last_of(entry.encode(), fields) == (5, False)


def test_an_entry_written_before_usage_details_reads_them_as_not_reported() -> None:
    fields = {b"v": b'["a",["d","stop",1,2,null,null]]'}
    events = decode_entry(b"0-7", fields)
    assert events[1].done == Done("stop", Usage(1, 2, None, None), None, None)


def test_text_stays_a_bare_string_in_the_entry() -> None:
    _, fields = encode_batch([Event(1, "token", "hi"), Event(2, "refusal", "no")])
    assert fields[b"v"] == b'["hi",["f","no"]]'
