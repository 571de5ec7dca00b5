"""A spec-conformant (WHATWG) incremental SSE parser for tests.

Deliberately independent of app/sse.py so that what the app encodes is
checked against the specification, not against itself.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None  # the last event id in force when this event was dispatched


@dataclass
class SSEParser:
    events: list[SSEEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_event_id: str | None = None  # the spec's "last event ID buffer": set by an id line
    # The spec's "last event ID string": what EventSource sends as Last-Event-ID on a
    # reconnect. It takes the buffer's value when a block ends (its blank line), so a
    # client cut inside a block does not hold that block's id.
    resume_id: str | None = None
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace")
    )
    _buffer: str = ""
    _pending_cr: bool = False
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _bom_checked: bool = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Feed bytes; return the events dispatched by them."""
        before = len(self.events)
        text = self._decoder.decode(chunk)
        if not self._bom_checked and text:
            self._bom_checked = True
            text = text.removeprefix("\ufeff")
        for ch in text:
            if self._pending_cr:
                self._pending_cr = False
                if ch == "\n":
                    continue
            if ch == "\r":
                self._pending_cr = True
                self._line(self._buffer)
                self._buffer = ""
            elif ch == "\n":
                self._line(self._buffer)
                self._buffer = ""
            else:
                self._buffer += ch
        return self.events[before:]

    def _line(self, line: str) -> None:
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            self.comments.append(line[1:].removeprefix(" "))
            return
        name, sep, value = line.partition(":")
        if sep:
            value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)

    def _dispatch(self) -> None:
        self.resume_id = self.last_event_id
        if not self._data:
            self._event = ""
            return
        self.events.append(
            SSEEvent(self._event or "message", "\n".join(self._data), self.last_event_id)
        )
        self._event = ""
        self._data = []
