"""Incremental decoders for upstream bodies: WHATWG Server-Sent Events and NDJSON.

PURE: no I/O, no asyncio. Both decoders are fed the body in whatever pieces the
transport delivers (a piece may end mid-line, between CR and LF, or inside a
multi-byte UTF-8 character) and return only what those pieces completed.

Strategy: lines are split on bytes, never on decoded text. CR and LF are ASCII
and cannot occur inside a UTF-8 sequence, so a character cut across pieces is
always whole again by the time its line is complete, and no incremental text
decoder is needed. `data` stays bytes because orjson parses UTF-8 bytes
directly; decoding it to str first would only be undone again.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


def _without_bom(data: bytes) -> bytes | None:
    """The start of a body without its UTF-8 BOM; None while too short to tell."""
    if len(data) < len(_BOM) and _BOM.startswith(data):
        return None
    return data[len(_BOM) :] if data.startswith(_BOM) else data


class LineSplitter:
    """Splits a byte stream into lines ended by LF, CRLF or a lone CR."""

    __slots__ = ("_buffer", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        # A piece that ended with CR may be the first half of CRLF: if the next
        # piece starts with LF, that LF ends no new line.
        self._skip_lf = False
        self._started = False

    def feed(self, piece: bytes) -> list[bytes]:
        if not piece:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if piece[:1] == b"\n":
                piece = piece[1:]
        data = self._buffer + piece if self._buffer else piece
        if not self._started:
            body = _without_bom(data)
            if body is None:
                self._buffer = data
                return []
            self._started = True
            data = body
        lines = data.splitlines()
        last = data[-1:]
        if last == b"\r":
            self._skip_lf = True
            self._buffer = b""
        elif last == b"\n":
            self._buffer = b""
        else:
            self._buffer = lines.pop() if lines else b""
        return lines

    def flush(self) -> bytes | None:
        """The unterminated last line at the end of the body, if any."""
        rest, self._buffer = self._buffer, b""
        return rest or None


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str  # "message" when the block named none
    data: bytes  # the data lines joined with LF, undecoded
    id: str | None = None


class SSEDecoder:
    """WHATWG event-stream parsing: fields, comments, multi-line data, dispatch
    on a blank line. An event not followed by a blank line before the body
    ends is dropped, as the spec (and both official SDKs) do."""

    __slots__ = ("_data", "_event", "_id", "_lines")

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._event = ""
        self._data: list[bytes] = []
        self._id: str | None = None

    def feed(self, piece: bytes) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in self._lines.feed(piece):
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: bytes) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[:1] == b":":
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        # `retry` and unknown fields mean nothing to a client of an upstream.
        return None

    def _dispatch(self) -> SSEEvent | None:
        event, self._event = self._event or "message", ""
        if not self._data:
            return None
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        return SSEEvent(event, data, self._id)


class NDJSONDecoder:
    """Newline-delimited JSON framing: yields each non-blank line's bytes."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = LineSplitter()

    def feed(self, piece: bytes) -> list[bytes]:
        return [line for line in self._lines.feed(piece) if line.strip()]

    def flush(self) -> list[bytes]:
        """A last line that the body did not end with a newline."""
        rest = self._lines.flush()
        return [rest] if rest is not None and rest.strip() else []


class SSEDataDecoder:
    """The `data` of each event, for upstreams whose event names and ids mean
    nothing to their provider (OpenAI-compatible chat streams).

    Strategy: such a body is almost always `data: {...}` blocks ended by LF LF.
    A piece is cut after its last blank line; when every block before it is
    one `data: ` line (the LFs are all in the separators), one split on
    `\n\ndata: ` yields the data (a third of the cost of splitting into blocks
    and slicing each); otherwise a block that is one `data: ` line is its own
    data and any other goes through the WHATWG field rules line by line. A CR
    anywhere hands the rest of the body to `SSEDecoder`, which knows every
    line ending; the result is the same data either way.
    """

    __slots__ = ("_general", "_pending", "_started")

    def __init__(self) -> None:
        self._pending = b""  # bytes after the last blank line seen
        self._started = False
        self._general: SSEDecoder | None = None

    def feed(self, piece: bytes) -> list[bytes]:
        if self._general is not None:
            return [event.data for event in self._general.feed(piece)]
        data = self._pending + piece if self._pending else piece
        if not self._started:
            body = _without_bom(data)
            if body is None:
                self._pending = data
                return []
            self._started = True
            data = body
        if b"\r" in data:
            self._pending = b""
            self._general = SSEDecoder()
            self._general._lines._started = True  # the BOM, if any, is gone
            return [event.data for event in self._general.feed(data)]
        cut = data.rfind(b"\n\n")
        if cut < 0:
            self._pending = data
            return []
        self._pending = data[cut + 2 :]
        blocks = data[:cut]
        if blocks[:6] == b"data: ":
            datas = blocks[6:].split(b"\n\ndata: ")
            # Every LF is in a separator: each block was one `data: ` line.
            if blocks.count(b"\n") == 2 * len(datas) - 2:
                return datas
        out: list[bytes] = []
        for block in blocks.split(b"\n\n"):
            if block[:6] == b"data: " and b"\n" not in block:
                out.append(block[6:])
            elif block:
                _block_data(block, out)
        return out


def _block_data(block: bytes, out: list[bytes]) -> None:
    """The WHATWG field rules over the LF-separated lines of one block."""
    lines: list[bytes] = []
    for line in block.split(b"\n"):
        if not line:  # a blank line inside: a block that began with extra LFs
            if lines:
                out.append(b"\n".join(lines))
                lines = []
            continue
        name, colon, value = line.partition(b":")
        if name == b"data":
            lines.append(value[1:] if colon and value[:1] == b" " else value)
    if lines:
        out.append(b"\n".join(lines))
