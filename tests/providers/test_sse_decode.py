"""The pure upstream decoders: any cut of the body decodes like the whole body."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from app.providers.sse_decode import (
    LineSplitter,
    NDJSONDecoder,
    SSEDataDecoder,
    SSEDecoder,
    SSEEvent,
)


def feed_all(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


def cut(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [body[a:b] for a, b in itertools.pairwise(edges)]


# Field values without line breaks; any other text, including multi-byte characters.
values = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]))
names = st.sampled_from(["message", "content_block_delta", "ping", "error"])
endings = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def event_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """An encoded stream (random line endings, comments) and the events it holds."""
    expected: list[SSEEvent] = []
    text = ""
    # One ending per stream: a CR then an LF from the next line would be one CRLF.
    eol = draw(endings)
    for _ in range(draw(st.integers(0, 5))):
        name = draw(names)
        lines = draw(st.lists(values, min_size=1, max_size=3))
        block = [] if name == "message" else [f"event: {name}"]
        if draw(st.booleans()):
            block.append(": a comment")
        block += [f"data:{line}" if line[:1] != " " else f"data: {line}" for line in lines]
        text += "".join(line + eol for line in block) + eol
        expected.append(SSEEvent(name, "\n".join(lines).encode()))
    return text.encode(), expected


@given(event_streams(), st.lists(st.integers(0, 10_000), max_size=20))
def test_any_cut_of_a_stream_decodes_to_its_events(
    stream: tuple[bytes, list[SSEEvent]], cuts: list[int]
) -> None:
    body, expected = stream
    assert feed_all(cut(body, cuts)) == expected


@given(event_streams())
def test_byte_by_byte_decodes_like_the_whole_body(stream: tuple[bytes, list[SSEEvent]]) -> None:
    body, expected = stream
    assert feed_all([body[i : i + 1] for i in range(len(body))]) == expected


def test_crlf_split_between_cr_and_lf_is_one_line_ending() -> None:
    assert feed_all([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]) == [
        SSEEvent("message", b"a"),
        SSEEvent("message", b"b"),
    ]


def test_multibyte_character_split_across_pieces() -> None:
    body = "data: caf\u00e9 \u2019\n\n".encode()
    cut_in_char = body.index(b"\xe2") + 1
    events = feed_all([body[:cut_in_char], body[cut_in_char:]])
    assert events == [SSEEvent("message", "caf\u00e9 \u2019".encode())]


def test_event_without_blank_line_at_the_end_is_dropped() -> None:
    assert feed_all([b"data: 1\n\ndata: 2\n"]) == [SSEEvent("message", b"1")]


def test_fields_follow_the_whatwg_rules() -> None:
    body = (
        b"\xef\xbb\xbfevent: ping\n\n"  # BOM; a block without data dispatches nothing
        b": comment\nid: 7\nretry: 10\ndata\ndata:x\nunknown: y\n\n"
    )
    assert feed_all(cut(body, [1, 2])) == [SSEEvent("message", b"\nx", id="7")]


def test_event_name_resets_after_each_dispatch() -> None:
    assert feed_all([b"event: a\ndata: 1\n\ndata: 2\n\n"]) == [
        SSEEvent("a", b"1"),
        SSEEvent("message", b"2"),
    ]


def test_line_splitter_keeps_the_unfinished_line() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nd") == [b"abc"]
    assert splitter.flush() == b"d"
    assert splitter.flush() is None


@given(
    st.lists(st.text(st.characters(exclude_categories=["Cs", "Cc"])), max_size=6),
    st.lists(st.integers(0, 10_000), max_size=20),
    st.booleans(),
)
def test_ndjson_lines_survive_any_cut(lines: list[str], cuts: list[int], crlf: bool) -> None:
    ending = "\r\n" if crlf else "\n"
    body = "".join(f'{{"t":"{line}"}}' + ending for line in lines).encode()
    decoder = NDJSONDecoder()
    out = [line for piece in cut(body, cuts) for line in decoder.feed(piece)] + decoder.flush()
    assert out == [f'{{"t":"{line}"}}'.encode() for line in lines]


def test_ndjson_skips_blank_lines_and_flushes_an_unterminated_last_line() -> None:
    decoder = NDJSONDecoder()
    assert decoder.feed(b'{"a":1}\n\n  \n{"b"') == [b'{"a":1}']
    assert decoder.feed(b":2}") == []
    assert decoder.flush() == [b'{"b":2}']


def feed_data(pieces: list[bytes]) -> list[bytes]:
    decoder = SSEDataDecoder()
    return [data for piece in pieces for data in decoder.feed(piece)]


@given(event_streams(), st.lists(st.integers(0, 10_000), max_size=20))
def test_the_data_decoder_yields_the_data_of_the_general_one(
    stream: tuple[bytes, list[SSEEvent]], cuts: list[int]
) -> None:
    body, expected = stream
    assert feed_data(cut(body, cuts)) == [event.data for event in expected]


def test_the_data_decoder_reads_blocks_with_several_fields_and_extra_blank_lines() -> None:
    body = b"\xef\xbb\xbf: hi\n\nevent: x\nid: 3\ndata: a\ndata:b\n\n\n\ndata: c\n\ndata: d"
    assert feed_data([body[:2], body[2:9], body[9:]]) == [b"a\nb", b"c"]


def test_the_data_decoder_splits_plain_data_blocks_and_falls_back_on_any_other_line() -> None:
    plain = b'data: {"a":1}\n\ndata: \n\ndata: [DONE]\n\n'
    assert feed_data([plain]) == [b'{"a":1}', b"", b"[DONE]"]
    mixed = b"data: x\n\n: ping\n\ndata: y\nid: 2\n\ndata: z\n\ndata:w\n\n"
    assert feed_data([mixed]) == [b"x", b"y", b"z", b"w"]
