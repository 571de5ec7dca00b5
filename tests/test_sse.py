"""app/sse.py: what it encodes, a spec-conformant parser reads back identically."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import BadLastEventId
from app.sse import (
    encode_comment,
    encode_event,
    encode_retry,
    event_id,
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
    raw = encode_retry(1500) + b"".join(encode_event(d, event="token") for d in datas)
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


@given(st.integers(min_value=1, max_value=2**53 - 1))
def test_event_id_round_trips(seq: int) -> None:
    sid = new_stream_id()
    assert parse_event_id(event_id(sid, seq)) == (sid, seq)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        ":5",
        "short:1",
        "AAAAAAAAAAAAAAAAAAAAAA:",
        "AAAAAAAAAAAAAAAAAAAAAA:x",
        "AAAAAAAAAAAAAAAAAAAAAA:0",
        "AAAAAAAAAAAAAAAAAAAAAA:-1",
        "AAAAAAAAAAAAAAAAAAAAAA:1.5",
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
