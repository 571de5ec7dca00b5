"""app/sse.py: what it encodes, a spec-conformant parser reads back identically."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import BadLastEventId
from app.sse import (
    EventId,
    encode_comment,
    encode_event,
    event_id,
    frame,
    new_stream_id,
    parse_event_id,
)
from tests.support.sse_parser import SSEParser

# Any text, including \r, \n, \r\n, NUL-free non-ASCII; a lone \r\n split across
# lines is the hard case for framing.
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"))
names = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":"), min_size=1
)


def _normalise(text: str) -> str:
    """What an SSE parser must give back: every line break becomes \\n."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(texts, names)
def test_encoded_event_parses_back_identically(text: str, name: str) -> None:
    sid = new_stream_id()
    parser = SSEParser()
    events = parser.feed(encode_event(text, event=name, id=event_id(sid, 7)))
    assert len(events) == 1
    assert events[0].event == name
    assert events[0].data == _normalise(text)
    assert events[0].id == f"{sid}:7"


@given(st.lists(texts, min_size=1, max_size=5), st.integers(min_value=1, max_value=64))
def test_events_survive_any_split_of_the_byte_stream(datas: list[str], piece: int) -> None:
    raw = frame(b"s:0", retry=1500) + b"".join(encode_event(d, event="token") for d in datas)
    parser = SSEParser()
    for i in range(0, len(raw), piece):
        parser.feed(raw[i : i + piece])
    assert [e.data for e in parser.events] == [_normalise(d) for d in datas]
    assert parser.retry == 1500


@given(texts)
def test_comment_is_ignored_by_parsers(text: str) -> None:
    parser = SSEParser()
    assert parser.feed(encode_comment(text)) == []


def test_stream_ids_carry_128_random_bits_and_are_url_safe() -> None:
    ids = {new_stream_id() for _ in range(1000)}
    assert len(ids) == 1000
    for sid in ids:
        assert len(sid) >= 22  # 16 bytes of base64
        assert all(c.isalnum() or c in "-_" for c in sid)


@given(st.integers(min_value=0, max_value=2**53 - 1), st.integers(min_value=0, max_value=99))
def test_event_id_round_trips(seq: int, part: int) -> None:
    sid = new_stream_id()
    assert parse_event_id(event_id(sid, seq, part)) == EventId(sid, seq, part)


def test_an_events_first_part_has_no_suffix_and_later_parts_do() -> None:
    sid = "A" * 22
    assert event_id(sid, 7) == f"{sid}:7"
    assert event_id(sid, 7, 2) == f"{sid}:7.2"
    assert parse_event_id(f"{sid}:0") == EventId(sid, 0)


payloads = (
    st.binary()
    .filter(lambda b: b"\n" not in b and b"\r" not in b)
    .map(lambda b: b.decode("utf-8", "replace").encode())
)
event_names = names.map(str.encode)


@given(payloads, st.none() | event_names, st.none() | st.integers(0, 10**6))
def test_framed_block_puts_the_id_last_and_parses_back(
    data: bytes, event: bytes | None, retry: int | None
) -> None:
    block = frame(b"sid:3.1", data, event=event, retry=retry)
    lines = block.split(b"\n")
    assert lines[-3:] == [b"id: sid:3.1", b"", b""]  # id last, then the blank line
    parser = SSEParser()
    dispatched = parser.feed(block)
    assert parser.resume_id == "sid:3.1"
    assert parser.retry == retry
    assert [e.data for e in dispatched] == [data.decode()]
    assert [e.event for e in dispatched] == [event.decode() if event else "message"]


@given(payloads, st.integers(min_value=0))
def test_a_client_cut_inside_a_block_holds_the_previous_id(data: bytes, cut: int) -> None:
    first = frame(b"sid:1", b"one")
    second = frame(b"sid:2", data, event=b"token")
    raw = first + second
    k = len(first) + cut % len(second)  # anywhere inside the second block
    parser = SSEParser()
    parser.feed(raw[:k])
    assert parser.resume_id == "sid:1"
    assert [e.data for e in parser.events] == ["one"]


def test_an_opening_block_without_data_sets_the_id_and_dispatches_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(frame(b"sid:0", retry=1500)) == []
    assert (parser.resume_id, parser.retry) == ("sid:0", 1500)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        ":5",
        "short:1",
        "AAAAAAAAAAAAAAAAAAAAAA:",
        "AAAAAAAAAAAAAAAAAAAAAA:x",
        "AAAAAAAAAAAAAAAAAAAAAA:-1",
        "AAAAAAAAAAAAAAAAAAAAAA:1.",
        "AAAAAAAAAAAAAAAAAAAAAA:1.0",
        "AAAAAAAAAAAAAAAAAAAAAA:1.x",
        "AAAAAAAAAAAAAAAAAAAAAA:1.2.3",
        "AAAAAAAAAAAAAAAAAAAAAA:.1",
        "AAAAAAAAAAAAAAAAAAAAAA:01",
        "AAAAAAAAAAAAAAAAAAAAAA:1.02",
        "AAAAAAAAAAAAAAAAAAAAAA:+1",
        "AAAAAAAAAAAAAAAAAAAAAA:٣",
        "AAAA AAAAAAAAAAAAAAAAAA:3",
        "AAAAAAAAAAAAAAAAAAAAAA:99999999999999999",
    ],
)
def test_bad_event_ids_are_rejected_with_a_reason(value: str) -> None:
    with pytest.raises(BadLastEventId) as info:
        parse_event_id(value)
    assert "Last-Event-ID" in info.value.message
    assert info.value.status == 400
