"""The Redis entry format rebuilds every event exactly (pure functions)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.providers.base import Usage
from app.resume.redis_codec import StreamKeys, decode_event, encode_event, entry_id, seq_of
from app.streaming.events import Done, Event, Failure


@given(seq=st.integers(1, 10**9), text=st.text())
def test_a_token_entry_round_trips_with_its_seq_as_the_entry_id(seq: int, text: str) -> None:
    event = decode_event(entry_id(seq).encode(), encode_event(Event(seq, "token", text=text)))
    assert (event.seq, event.kind, event.text) == (seq, "token", text)


@given(
    usage=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    ttft=st.none() | st.floats(0, 1e6),
    tps=st.none() | st.floats(0, 1e6),
)
def test_a_done_entry_round_trips(
    usage: tuple[int, int], ttft: float | None, tps: float | None
) -> None:
    done = Done("length", Usage(*usage), ttft, tps)
    event = decode_event(b"0-7", encode_event(Event(7, "done", done=done)))
    assert (event.seq, event.kind, event.done) == (7, "done", done)


@given(message=st.text(), retryable=st.booleans())
def test_an_error_entry_round_trips(message: str, retryable: bool) -> None:
    failure = Failure("upstream_error", message, retryable)
    event = decode_event("0-3", encode_event(Event(3, "error", failure=failure)))
    assert (event.seq, event.kind, event.failure) == (3, "error", failure)


def test_every_key_of_a_stream_shares_its_hash_tag() -> None:
    keys = StreamKeys.of("abc")
    assert keys.all == (
        "sluice:{abc}:log",
        "sluice:{abc}:meta",
        "sluice:{abc}:lease",
        "sluice:{abc}:readers",
    )
    assert seq_of(b"0-42") == 42
